//! Synthetic exporters: NetFlow v5, v9, IPFIX and sFlow v5 datagrams of realistic flows
//! ([`model`]), encoded as real exporters send them ([`encode`]), for any number of
//! exporters at once. [`Synth`] is a [`Source`] for the sender of [`crate::send`].
//!
//! Per exporter e (its own socket and source port):
//! - identity: v5 engine type/id = e (so at most 65,536 v5 exporters), v9 source id and IPFIX
//!   observation domain e + 1, sFlow agent address 10.255.0.0 + e + 1 (sub-agent 0);
//! - its own flow sequence: a generator seeded from the run's seed and e ([`exporter_rng`]);
//! - sequence numbers as the protocols define them: v5 flows before the datagram, v9 datagrams
//!   before it, IPFIX data records (flow and options) before it, sFlow datagrams of the agent
//!   and samples of each data source;
//! - sysUptime from a boot time a day (plus e seconds) before the run started;
//! - a refresh first and then every `refresh_every` datagrams or `refresh_interval`, whichever
//!   comes first: for v9 and IPFIX, a datagram with both flow templates, both options
//!   templates and the sampler record, followed by the interface table (as many datagrams as
//!   it takes); for sFlow, one counter sample per interface.
//!
//! Data datagrams are filled as exporters fill them: records are added while they fit in
//! 1400 bytes (v5: 30 records), or up to `max_records`. A record that does not fit opens the
//! next datagram. Every flow record's end time is its send time.

pub mod encode;
pub mod model;

use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::send::{Rendered, Source};
use encode::{Clock, IfCounters, SampleState, DATAGRAM_BUDGET};
pub use model::{Flow, Model, ModelConfig, Rng};

/// Export protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    V5,
    V9,
    Ipfix,
    Sflow,
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "v5" | "5" | "netflow5" => Ok(Proto::V5),
            "v9" | "9" | "netflow9" => Ok(Proto::V9),
            "ipfix" | "v10" | "10" => Ok(Proto::Ipfix),
            "sflow" | "sflow5" => Ok(Proto::Sflow),
            _ => Err(format!(
                "unknown protocol {s:?}: expected v5, v9, ipfix or sflow"
            )),
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::V5 => "v5",
            Proto::V9 => "v9",
            Proto::Ipfix => "ipfix",
            Proto::Sflow => "sflow",
        })
    }
}

/// What the synthetic exporters send.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub proto: Proto,
    /// Exporters (1..=65536 for v5, 1..=65534 for sFlow).
    pub exporters: usize,
    pub model: ModelConfig,
    pub seed: u64,
    /// Sampling: one packet in N (1 = unsampled), announced in options data (v9/IPFIX), the
    /// v5 header or each sFlow sample.
    pub sampling: u32,
    /// At most this many flow records (sFlow: samples) per data datagram; `None` fills 1400
    /// bytes.
    pub max_records: Option<usize>,
    /// Refresh (templates and options, sFlow counters) after this many datagrams...
    pub refresh_every: u32,
    /// ... or this long, ms, whichever comes first.
    pub refresh_interval_ms: i64,
    /// Flow records over all exporters; `None` sends until the sender stops.
    pub count: Option<u64>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            proto: Proto::Ipfix,
            exporters: 1,
            model: ModelConfig::default(),
            seed: 1,
            sampling: 100,
            max_records: None,
            refresh_every: 4096,
            refresh_interval_ms: 10_000,
            count: None,
        }
    }
}

/// The flow generator of exporter `e` for a run seeded `seed`.
pub fn exporter_rng(seed: u64, e: usize) -> Rng {
    Rng::new(
        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (e as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03),
    )
}

/// The v9 source id / IPFIX observation domain of exporter `e`.
pub fn source_id(e: usize) -> u32 {
    e as u32 + 1
}

/// The sFlow agent address of exporter `e`.
pub fn sflow_agent(e: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0aff_0000u32 + e as u32 + 1)
}

/// The flow records exporter `e` sends in a run of `count` records over `exporters`.
pub fn exporter_quota(count: u64, exporters: usize, e: usize) -> u64 {
    let n = exporters.max(1) as u64;
    count / n + u64::from((e as u64) < count % n)
}

#[derive(Clone, Debug)]
struct Exporter {
    rng: Rng,
    /// Flow records still to send (`u64::MAX`: no end).
    quota: u64,
    /// A flow drawn that did not fit the previous datagram.
    carry: Option<Flow>,
    /// v5 flows, v9 datagrams, IPFIX data records, sFlow datagrams sent before.
    sequence: u32,
    boot_ms: i64,
    datagrams_since_refresh: u32,
    last_refresh_ms: Option<i64>,
    /// Position within a refresh under way.
    refresh_part: Option<usize>,
    /// sFlow: per interface (index ifIndex - 1) flow sample state, counter sample sequence
    /// and counters.
    samples: Vec<SampleState>,
    counter_seq: Vec<u32>,
    counters: Vec<IfCounters>,
}

/// Synthetic exporters as a [`Source`].
#[derive(Debug)]
pub struct Synth {
    cfg: SynthConfig,
    model: Model,
    exporters: Vec<Exporter>,
    /// Scratch: flows of the datagram being built, by family.
    v4: Vec<Flow>,
    v6: Vec<Flow>,
    /// Most flow records a data datagram can hold (all IPv4, the smaller records).
    max_fit: usize,
}

impl Synth {
    /// Checks the configuration and prepares the exporters; `start_ms` is the wall clock at
    /// the start of the run (sysUptime counts from a day before).
    pub fn new(cfg: SynthConfig, start_ms: i64) -> Result<Synth, String> {
        let mut model_cfg = cfg.model.clone();
        if cfg.proto == Proto::V5 {
            if model_cfg.ipv6 > 0.0 {
                return Err(
                    "NetFlow v5 carries IPv4 only: use --ipv6 0 (or v9, ipfix, sflow)".into(),
                );
            }
            model_cfg.ipv6 = 0.0;
        }
        let max_exporters = match cfg.proto {
            Proto::V5 => 1 << 16,
            Proto::Sflow => 65_534,
            _ => 1 << 20,
        };
        if !(1..=max_exporters).contains(&cfg.exporters) {
            return Err(format!(
                "--exporters must be 1..={max_exporters} for {}",
                cfg.proto
            ));
        }
        if cfg.sampling == 0 || (cfg.proto == Proto::V5 && cfg.sampling > 0x3fff) {
            return Err("--sampling must be 1..=16383 for v5, at least 1 otherwise".into());
        }
        if cfg.max_records == Some(0) {
            return Err("--records-per-datagram must be at least 1".into());
        }
        if cfg.refresh_every == 0 || cfg.refresh_interval_ms <= 0 {
            return Err("template refresh settings must be positive".into());
        }
        let model = Model::new(model_cfg)?;
        let nif = model.cfg.interfaces as usize;
        let exporters = (0..cfg.exporters)
            .map(|e| Exporter {
                rng: exporter_rng(cfg.seed, e),
                quota: cfg
                    .count
                    .map_or(u64::MAX, |c| exporter_quota(c, cfg.exporters, e)),
                carry: None,
                sequence: 0,
                boot_ms: start_ms - 86_400_000 - e as i64 * 1000,
                datagrams_since_refresh: 0,
                last_refresh_ms: None,
                refresh_part: None,
                samples: if cfg.proto == Proto::Sflow {
                    vec![
                        SampleState {
                            sequence: 0,
                            pool: 0,
                            sampling: cfg.sampling,
                        };
                        nif
                    ]
                } else {
                    Vec::new()
                },
                counter_seq: if cfg.proto == Proto::Sflow {
                    vec![0; nif]
                } else {
                    Vec::new()
                },
                counters: if cfg.proto == Proto::Sflow {
                    vec![IfCounters::default(); nif]
                } else {
                    Vec::new()
                },
            })
            .collect();
        let fit = match cfg.proto {
            Proto::V5 => encode::V5_MAX_RECORDS,
            Proto::V9 => {
                (DATAGRAM_BUDGET - encode::V9_HEADER - 7) / encode::record_len(false, false)
            }
            Proto::Ipfix => {
                (DATAGRAM_BUDGET - encode::IPFIX_HEADER - 4) / encode::record_len(false, true)
            }
            // The smallest sample: IPv4 with an 8-byte transport header.
            Proto::Sflow => (DATAGRAM_BUDGET - encode::SFLOW_HEADER) / (8 + 32 + 8 + 16 + 44),
        };
        let max_fit = cfg.max_records.map_or(fit, |m| m.min(fit)).max(1);
        Ok(Synth {
            cfg,
            model,
            exporters,
            v4: Vec::with_capacity(64),
            v6: Vec::with_capacity(64),
            max_fit,
        })
    }

    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    fn refresh_parts(&self) -> usize {
        let nif = self.model.cfg.interfaces as usize;
        match self.cfg.proto {
            Proto::V5 => 0,
            Proto::V9 => {
                let per = (DATAGRAM_BUDGET - encode::V9_HEADER - 4) / encode::V9_IFACE_RECORD;
                1 + nif.div_ceil(per)
            }
            Proto::Ipfix => {
                let per = (DATAGRAM_BUDGET - encode::IPFIX_HEADER - 4) / encode::IPFIX_IFACE_MAX;
                1 + nif.div_ceil(per)
            }
            Proto::Sflow => nif.div_ceil(Self::counters_per_datagram()),
        }
    }

    fn counters_per_datagram() -> usize {
        (DATAGRAM_BUDGET - encode::SFLOW_HEADER) / encode::COUNTER_SAMPLE_LEN
    }

    fn ifaces_per_datagram(&self) -> usize {
        match self.cfg.proto {
            Proto::V9 => (DATAGRAM_BUDGET - encode::V9_HEADER - 4) / encode::V9_IFACE_RECORD,
            _ => (DATAGRAM_BUDGET - encode::IPFIX_HEADER - 4) / encode::IPFIX_IFACE_MAX,
        }
    }

    /// Renders part `part` of a refresh of exporter `e`.
    fn render_refresh(&mut self, e: usize, part: usize, now: Clock, out: &mut Vec<u8>) -> Rendered {
        let proto = self.cfg.proto;
        let nif = self.model.cfg.interfaces;
        let x = &mut self.exporters[e];
        let uptime = (now.ms - x.boot_ms).rem_euclid(1 << 32) as u32;
        if proto == Proto::Sflow {
            let per = Self::counters_per_datagram() as u32;
            let first = part as u32 * per + 1;
            let last = (first + per - 1).min(nif);
            let start = out.len();
            encode::sflow_header(
                &encode::SflowHeader {
                    agent: sflow_agent(e),
                    sub_agent: 0,
                    sequence: x.sequence,
                    uptime_ms: uptime,
                },
                out,
            );
            for i in first..=last {
                let k = (i - 1) as usize;
                encode::counter_sample(x.counter_seq[k], i, &x.counters[k], out);
                x.counter_seq[k] = x.counter_seq[k].wrapping_add(1);
            }
            let n = last + 1 - first;
            encode::sflow_finish(start, n, out);
            x.sequence = x.sequence.wrapping_add(1);
            return Rendered {
                flow_records: 0,
                options_records: n,
            };
        }
        let ipfix = proto == Proto::Ipfix;
        let src = source_id(e);
        let start = out.len();
        encode::message_header(ipfix, uptime, now, x.sequence, src, out);
        let (records, options) = if part == 0 {
            let t = encode::templates(ipfix, out);
            encode::sampler_record(ipfix, src, self.cfg.sampling, out);
            (t + 1, 1u32)
        } else {
            let per = self.ifaces_per_datagram() as u32;
            let first = (part as u32 - 1) * per + 1;
            let last = (first + per - 1).min(nif);
            encode::interface_records(ipfix, e, src, first..last + 1, out);
            let n = last + 1 - first;
            (n as u16, n)
        };
        encode::finish_message(ipfix, start, records, out);
        let x = &mut self.exporters[e];
        x.sequence = if ipfix {
            x.sequence.wrapping_add(options)
        } else {
            x.sequence.wrapping_add(1)
        };
        Rendered {
            flow_records: 0,
            options_records: options,
        }
    }

    /// Renders a data datagram of exporter `e`.
    fn render_data(&mut self, e: usize, now: Clock, out: &mut Vec<u8>) -> Rendered {
        let proto = self.cfg.proto;
        let max = self.max_fit;
        let model = &self.model;
        let x = &mut self.exporters[e];
        let uptime = (now.ms - x.boot_ms).rem_euclid(1 << 32) as u32;
        self.v4.clear();
        self.v6.clear();
        let ipfix = proto == Proto::Ipfix;
        let (len4, len6) = (
            encode::record_len(false, ipfix),
            encode::record_len(true, ipfix),
        );
        let mut size = match proto {
            Proto::V5 => encode::V5_HEADER,
            Proto::V9 => encode::V9_HEADER,
            Proto::Ipfix => encode::IPFIX_HEADER,
            Proto::Sflow => encode::SFLOW_HEADER,
        };
        let mut n = 0usize;
        while n < max && x.quota > 0 {
            let f = match x.carry.take() {
                Some(f) => f,
                None => model.flow(&mut x.rng),
            };
            let add = match proto {
                Proto::V5 => encode::V5_RECORD,
                Proto::Sflow => encode::flow_sample_len(&f),
                // A set's header and worst-case v9 padding come with its first record.
                _ => {
                    let (list, len) = if f.v6 {
                        (&self.v6, len6)
                    } else {
                        (&self.v4, len4)
                    };
                    len + if list.is_empty() { 7 } else { 0 }
                }
            };
            if n > 0 && size + add > DATAGRAM_BUDGET {
                x.carry = Some(f);
                break;
            }
            size += add;
            n += 1;
            if x.quota != u64::MAX {
                x.quota -= 1;
            }
            if f.v6 {
                self.v6.push(f);
            } else {
                self.v4.push(f);
            }
        }
        let start = out.len();
        match proto {
            Proto::V5 => {
                encode::v5_datagram(
                    &encode::V5Header {
                        uptime_ms: uptime,
                        now,
                        sequence: x.sequence,
                        engine: e as u16,
                        sampling: self.cfg.sampling,
                    },
                    &self.v4,
                    out,
                );
                x.sequence = x.sequence.wrapping_add(n as u32);
            }
            Proto::Sflow => {
                encode::sflow_header(
                    &encode::SflowHeader {
                        agent: sflow_agent(e),
                        sub_agent: 0,
                        sequence: x.sequence,
                        uptime_ms: uptime,
                    },
                    out,
                );
                for f in self.v4.iter().chain(self.v6.iter()) {
                    let k = (f.in_if - 1) as usize;
                    let s = &mut x.samples[k];
                    s.sequence = s.sequence.wrapping_add(1);
                    s.pool = s.pool.wrapping_add(s.sampling);
                    encode::flow_sample(f, s, out);
                    let scaled = |v: u64| v.saturating_mul(u64::from(s.sampling));
                    let c = &mut x.counters[k];
                    c.in_octets = c.in_octets.wrapping_add(scaled(f.bytes));
                    c.in_packets = c.in_packets.wrapping_add(scaled(f.packets) as u32);
                    let c = &mut x.counters[(f.out_if - 1) as usize];
                    c.out_octets = c.out_octets.wrapping_add(scaled(f.bytes));
                    c.out_packets = c.out_packets.wrapping_add(scaled(f.packets) as u32);
                }
                encode::sflow_finish(start, n as u32, out);
                x.sequence = x.sequence.wrapping_add(1);
            }
            Proto::V9 | Proto::Ipfix => {
                encode::message_header(ipfix, uptime, now, x.sequence, source_id(e), out);
                for (id, list) in [(encode::TPL_V4, &self.v4), (encode::TPL_V6, &self.v6)] {
                    if list.is_empty() {
                        continue;
                    }
                    let set = encode::open_set(id, out);
                    for f in list {
                        encode::flow_record(f, ipfix, now, out);
                    }
                    encode::close_set(ipfix, set, out);
                }
                encode::finish_message(ipfix, start, n as u16, out);
                x.sequence = if ipfix {
                    x.sequence.wrapping_add(n as u32)
                } else {
                    x.sequence.wrapping_add(1)
                };
            }
        }
        Rendered {
            flow_records: n as u32,
            options_records: 0,
        }
    }
}

impl Source for Synth {
    fn exporters(&self) -> usize {
        self.exporters.len()
    }

    fn max_datagram_len(&self) -> usize {
        // v5 at 30 records is 1464 bytes; everything else stays within the budget.
        DATAGRAM_BUDGET.max(encode::V5_HEADER + 30 * encode::V5_RECORD)
    }

    fn remaining(&self, e: usize) -> u64 {
        match self.exporters.get(e).map(|x| x.quota) {
            None | Some(0) => 0,
            Some(u64::MAX) => u64::MAX,
            // A lower bound of the data datagrams left: refreshes come on top, and the sender
            // never asks for more than this at once.
            Some(q) => q.div_ceil(self.max_fit as u64),
        }
    }

    fn render(&mut self, e: usize, now: (i64, u32), out: &mut Vec<u8>) -> Rendered {
        let now = Clock {
            ms: now.0,
            subsec_ns: now.1,
        };
        let parts = self.refresh_parts();
        let every = self.cfg.refresh_every;
        let interval = self.cfg.refresh_interval_ms;
        let x = &mut self.exporters[e];
        if parts > 0 && x.refresh_part.is_none() {
            let due = match x.last_refresh_ms {
                None => true,
                Some(t) => x.datagrams_since_refresh >= every || now.ms - t >= interval,
            };
            if due {
                x.refresh_part = Some(0);
                x.last_refresh_ms = Some(now.ms);
                x.datagrams_since_refresh = 0;
            }
        }
        x.datagrams_since_refresh = x.datagrams_since_refresh.saturating_add(1);
        if let Some(part) = x.refresh_part {
            x.refresh_part = (part + 1 < parts).then_some(part + 1);
            return self.render_refresh(e, part, now, out);
        }
        self.render_data(e, now, out)
    }
}
