//! Templates compiled to offset plans.
//!
//! A template arrives as a list of (enterprise, element id, length) triples. We compile it once
//! into a [`Template`]: every field gets its final document name, its abstract type and, while
//! all preceding fields have fixed lengths, its byte offset in the record. The well-known
//! elements that the flow view needs (addresses, ports, counters, times) get a slot in
//! [`Template::slots`], so reading a record's core fields is a handful of indexed loads with no
//! per-field dispatch.

use std::fmt;
use std::sync::Arc;

use crate::ie::{self, IeType, REVERSE_PEN};

/// Length value announcing a variable-length field (RFC 7011 §7).
pub const VARLEN: u16 = 0xffff;

/// Which protocol a template came from; v9 and IPFIX share ids but not every meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// NetFlow v5's fixed record layout expressed as a template.
    V5,
    /// NetFlow v9 (RFC 3954).
    V9,
    /// IPFIX (RFC 7011).
    Ipfix,
    /// sFlow v5 samples expressed as records of IPFIX elements (a fixed layout built by the
    /// sFlow decoder, like the v5 layout).
    Sflow,
    /// Firewall syslog lines (netfilter, Cisco ASA, PAN-OS) as records of IANA and Sluice
    /// elements in the fixed layout of [`crate::event`].
    Syslog,
    /// AWS VPC Flow Log records in the same layout.
    VpcFlow,
}

impl Dialect {
    /// Whether records of this dialect are log events laid out by [`crate::event`] (their
    /// strings are Sluice enterprise elements; documents show them under ECS names only).
    pub fn is_event(self) -> bool {
        matches!(self, Dialect::Syslog | Dialect::VpcFlow)
    }
}

/// One field of a template as it came off the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    /// Element id, without the enterprise bit.
    pub id: u16,
    /// Private enterprise number, 0 for IANA (and for every v9 field).
    pub pen: u32,
    /// Length in bytes, or [`VARLEN`].
    pub len: u16,
}

/// Well-known elements located by the compiler. The discriminant indexes [`Template::slots`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Slot {
    SrcV4,
    SrcV6,
    DstV4,
    DstV6,
    SrcPort,
    DstPort,
    Proto,
    TcpFlags,
    Bytes,
    Packets,
    RevBytes,
    RevPackets,
    InIf,
    OutIf,
    NextHopV4,
    NextHopV6,
    SrcAs,
    DstAs,
    SrcMaskV4,
    DstMaskV4,
    SrcMaskV6,
    DstMaskV6,
    StartSec,
    EndSec,
    StartMs,
    EndMs,
    StartUs,
    EndUs,
    StartNs,
    EndNs,
    StartUptime,
    EndUptime,
    StartDeltaUs,
    EndDeltaUs,
    SysInitMs,
    DurationMs,
    DurationUs,
    ObservationSec,
    ObservationMs,
    ObservationUs,
    ObservationNs,
    SamplingInterval,
    SamplerRandomInterval,
    SamplingPacketInterval,
    SamplingPacketSpace,
    SamplerId,
    SelectorId,
    InterfaceName,
    InterfaceDescription,
}

/// Number of [`Slot`] variants.
pub const SLOT_COUNT: usize = Slot::InterfaceDescription as usize + 1;
/// Marker for an empty slot.
pub const NO_FIELD: u16 = u16::MAX;

/// IANA element ids that fill slots, in order of preference: the first one found in a template
/// wins (for example octetDeltaCount over octetTotalCount over initiatorOctets).
const SLOT_SOURCES: &[(Slot, &[u16])] = &[
    (Slot::SrcV4, &[8]),
    (Slot::SrcV6, &[27]),
    (Slot::DstV4, &[12]),
    (Slot::DstV6, &[28]),
    (Slot::SrcPort, &[7, 180, 182]),
    (Slot::DstPort, &[11, 181, 183]),
    (Slot::Proto, &[4]),
    (Slot::TcpFlags, &[6]),
    (Slot::Bytes, &[1, 85, 23, 231]),
    (Slot::Packets, &[2, 86, 24, 298]),
    (Slot::RevBytes, &[232]),
    (Slot::RevPackets, &[299]),
    (Slot::InIf, &[10]),
    (Slot::OutIf, &[14]),
    (Slot::NextHopV4, &[15]),
    (Slot::NextHopV6, &[62]),
    (Slot::SrcAs, &[16]),
    (Slot::DstAs, &[17]),
    (Slot::SrcMaskV4, &[9]),
    (Slot::DstMaskV4, &[13]),
    (Slot::SrcMaskV6, &[29]),
    (Slot::DstMaskV6, &[30]),
    (Slot::StartSec, &[150]),
    (Slot::EndSec, &[151]),
    (Slot::StartMs, &[152]),
    (Slot::EndMs, &[153]),
    (Slot::StartUs, &[154]),
    (Slot::EndUs, &[155]),
    (Slot::StartNs, &[156]),
    (Slot::EndNs, &[157]),
    (Slot::StartUptime, &[22]),
    (Slot::EndUptime, &[21]),
    (Slot::StartDeltaUs, &[158]),
    (Slot::EndDeltaUs, &[159]),
    (Slot::SysInitMs, &[160]),
    (Slot::DurationMs, &[161]),
    (Slot::DurationUs, &[162]),
    (Slot::ObservationSec, &[322]),
    (Slot::ObservationMs, &[323]),
    (Slot::ObservationUs, &[324]),
    (Slot::ObservationNs, &[325]),
    (Slot::SamplingInterval, &[34]),
    (Slot::SamplerRandomInterval, &[50]),
    (Slot::SamplingPacketInterval, &[305]),
    (Slot::SamplingPacketSpace, &[306]),
    (Slot::SamplerId, &[48]),
    (Slot::SelectorId, &[302]),
    (Slot::InterfaceName, &[82]),
    (Slot::InterfaceDescription, &[83]),
];

/// Reverse (RFC 5103) counterparts that fill slots for biflows.
const REVERSE_SLOT_SOURCES: &[(Slot, &[u16])] =
    &[(Slot::RevBytes, &[1, 85]), (Slot::RevPackets, &[2, 86])];

/// NetFlow v9 scope field types (RFC 3954 §6.1); a separate namespace from field types.
fn v9_scope_name(id: u16) -> &'static str {
    match id {
        1 => "scope_system",
        2 => "scope_interface",
        3 => "scope_line_card",
        4 => "scope_cache",
        5 => "scope_template",
        _ => "",
    }
}

/// A compiled field.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The field as announced.
    pub spec: FieldSpec,
    /// Abstract type; `OctetArray` for elements we do not know.
    pub ty: IeType,
    /// Name under `netflow.` in documents (a repeated element shares its name; see
    /// [`Template::next_same`]).
    pub name: Box<str>,
    /// Whether the element is known to us (unknown ones are emitted as hex).
    pub known: bool,
    /// RFC 5103 reverse element.
    pub reverse: bool,
    /// Scope field of an options template.
    pub scope: bool,
    /// Offset in the record when every field before it has a fixed length.
    pub offset: Option<u32>,
}

/// A template compiled to an offset plan. Cloning is cheap (reference counts, no
/// allocation): batches keep their own copies of the templates their records use.
#[derive(Clone)]
pub struct Template {
    /// Unique per compilation (process-wide), so that holders of a copy can tell "the same
    /// compiled template" from "one redefined at the same address" without comparing fields.
    /// Not part of equality.
    pub uid: u64,
    /// Template id (256..=65535 for v9/IPFIX; 0 for the v5 layout).
    pub id: u16,
    /// Dialect the template came from.
    pub dialect: Dialect,
    /// Number of leading scope fields; non-zero only for options templates.
    pub scope_count: u16,
    /// Whether it is an options template (its records feed tables, not flow documents).
    pub options: bool,
    /// Fields in record order.
    pub fields: Arc<[Field]>,
    /// Record length when all fields are fixed-length.
    pub fixed_len: Option<usize>,
    /// Smallest possible record length (varlen fields count one byte).
    pub min_len: usize,
    /// Field index per [`Slot`], or [`NO_FIELD`].
    pub slots: [u16; SLOT_COUNT],
    /// (offset, length) of every field when the template is fixed-length; empty otherwise.
    pub fixed_spans: Arc<[(u32, u32)]>,
    /// Per field: the next field with the same name, or [`NO_FIELD`].
    pub next_same: Arc<[u16]>,
    /// Per field: whether an earlier field has the same name.
    pub repeat: Arc<[bool]>,
    /// Event dialects only (empty otherwise): field index by element, see
    /// [`Template::event_field`].
    pub event_index: Arc<[u16]>,
}

impl PartialEq for Template {
    /// Same definition (the `uid` is ignored): what a template refresh is compared by.
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.dialect == o.dialect
            && self.scope_count == o.scope_count
            && self.options == o.options
            && self.fields == o.fields
    }
}

static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("id", &self.id)
            .field("dialect", &self.dialect)
            .field("options", &self.options)
            .field("fields", &self.fields.len())
            .field("fixed_len", &self.fixed_len)
            .finish()
    }
}

impl Template {
    /// Compiles a template. `scope_count` leading fields are scope fields (options templates).
    /// Fails on templates that could never describe a record.
    pub fn compile(
        id: u16,
        dialect: Dialect,
        options: bool,
        scope_count: u16,
        specs: &[FieldSpec],
    ) -> Result<Template, crate::DecodeError> {
        use crate::DecodeError::InvalidTemplate;
        if usize::from(scope_count) > specs.len() {
            return Err(InvalidTemplate("scope count above field count"));
        }
        let mut fields = Vec::with_capacity(specs.len());
        let mut offset: Option<u32> = Some(0);
        let mut min_len = 0usize;
        for (i, spec) in specs.iter().enumerate() {
            let scope = i < usize::from(scope_count);
            let (name, ty, known, reverse) = name_of(dialect, *spec, scope);
            fields.push(Field {
                spec: *spec,
                ty,
                name,
                known,
                reverse,
                scope,
                offset,
            });
            if spec.len == VARLEN {
                // A v9 field cannot be variable length: 65535 bytes is simply too long for any
                // datagram, so reject it rather than misparse. Event layouts are built by Sluice
                // and made of variable-length fields.
                if dialect != Dialect::Ipfix && !dialect.is_event() {
                    return Err(InvalidTemplate("v9 field of length 65535"));
                }
                offset = None;
                min_len += 1;
            } else {
                offset = offset.map(|o| o + u32::from(spec.len));
                min_len += usize::from(spec.len);
            }
        }
        let (next_same, repeat) = link_repeats(&fields);
        let fixed_len = offset.map(|o| o as usize);
        let fixed_spans = if fixed_len.is_some() {
            fields
                .iter()
                .map(|f| (f.offset.unwrap_or(0), u32::from(f.spec.len)))
                .collect()
        } else {
            Arc::from(Vec::new())
        };
        let mut slots = [NO_FIELD; SLOT_COUNT];
        fill_slots(&fields, &mut slots);
        let event_index = if dialect.is_event() {
            event_index_of(&fields)
        } else {
            Arc::from(Vec::new())
        };
        Ok(Template {
            uid: NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            id,
            dialect,
            scope_count,
            options,
            fields: fields.into(),
            fixed_len,
            min_len,
            slots,
            fixed_spans,
            next_same,
            repeat,
            event_index,
        })
    }

    /// Field index of a Sluice element ([`crate::event::SLUICE_PEN`]) or of an IANA element
    /// below 384 in an event template; `None` for other templates.
    #[inline]
    pub fn event_field(&self, pen: u32, id: u16) -> Option<usize> {
        let k = event_key(pen, id)?;
        match self.event_index.get(k) {
            Some(&i) if i != NO_FIELD => Some(usize::from(i)),
            _ => None,
        }
    }

    /// Field index of a slot, if the template carries that element.
    #[inline]
    pub fn slot(&self, slot: Slot) -> Option<usize> {
        let i = self.slots[slot as usize];
        (i != NO_FIELD).then_some(usize::from(i))
    }

    /// The field specs as announced (for comparison and persistence).
    pub fn specs(&self) -> impl Iterator<Item = FieldSpec> + '_ {
        self.fields.iter().map(|f| f.spec)
    }
}

fn fill_slots(fields: &[Field], slots: &mut [u16; SLOT_COUNT]) {
    let mut pick = |table: &[(Slot, &[u16])], reverse: bool| {
        for (slot, ids) in table {
            if slots[*slot as usize] != NO_FIELD {
                continue;
            }
            'ids: for id in *ids {
                for (i, f) in fields.iter().enumerate() {
                    let pen_ok = if reverse {
                        f.spec.pen == REVERSE_PEN
                    } else {
                        f.spec.pen == 0
                    };
                    if pen_ok && !f.scope && f.spec.id == *id && f.spec.len != 0 {
                        slots[*slot as usize] = i as u16;
                        break 'ids;
                    }
                }
            }
        }
    };
    pick(SLOT_SOURCES, false);
    pick(REVERSE_SLOT_SOURCES, true);
    // Scope fields of options templates name what the options record describes: the interface
    // in an interface table, the sampler in a sampler table. Fall back to them.
    for (slot, ids) in [(Slot::InIf, &[10u16][..]), (Slot::SamplerId, &[48, 302])] {
        if slots[slot as usize] == NO_FIELD {
            if let Some(i) = fields
                .iter()
                .position(|f| f.scope && f.spec.pen == 0 && ids.contains(&f.spec.id))
            {
                slots[slot as usize] = i as u16;
            }
        }
    }
}

/// Slots of an event template's index: Sluice elements 0..128, then IANA elements 0..384.
const EVENT_INDEX_LEN: usize = 128 + 384;

fn event_key(pen: u32, id: u16) -> Option<usize> {
    let id = usize::from(id);
    match pen {
        crate::event::SLUICE_PEN if id < 128 => Some(id),
        0 if id < 384 => Some(128 + id),
        _ => None,
    }
}

fn event_index_of(fields: &[Field]) -> Arc<[u16]> {
    let mut ix = vec![NO_FIELD; EVENT_INDEX_LEN];
    for (i, f) in fields.iter().enumerate() {
        if let Some(k) = event_key(f.spec.pen, f.spec.id) {
            if ix[k] == NO_FIELD {
                ix[k] = i as u16;
            }
        }
    }
    ix.into()
}

/// Document name, type, whether known, whether reverse.
fn name_of(dialect: Dialect, spec: FieldSpec, scope: bool) -> (Box<str>, IeType, bool, bool) {
    if dialect == Dialect::V9 && scope {
        let n = v9_scope_name(spec.id);
        if !n.is_empty() {
            return (n.into(), IeType::OctetArray, true, false);
        }
        return (
            format!("scope_{}", spec.id).into(),
            IeType::OctetArray,
            false,
            false,
        );
    }
    if dialect.is_event() && spec.pen == crate::event::SLUICE_PEN {
        if let Some(d) = crate::event::lookup(spec.id) {
            return (d.name.into(), d.ty, true, false);
        }
    }
    let (pen, reverse) = if spec.pen == REVERSE_PEN {
        (0, true)
    } else {
        (spec.pen, false)
    };
    let def = if dialect == Dialect::V9 {
        ie::lookup_v9(spec.id)
    } else {
        ie::lookup(pen, spec.id)
    };
    match def {
        Some(d) if reverse => (format!("reverse_{}", d.name).into(), d.ty, true, true),
        Some(d) => (d.name.into(), d.ty, true, false),
        None => (
            format!("enterprise_{}_{}", spec.pen, spec.id).into(),
            IeType::OctetArray,
            false,
            reverse,
        ),
    }
}

/// Links fields that share a name (some exporters list one element twice, e.g. IOS XR SRv6
/// templates carry the outer and the inner header's ports and protocol). Documents show such
/// an element once, as an array of its values in record order; `next_same[i]` is the next
/// field with field i's name, and `repeat[i]` marks fields after the first.
fn link_repeats(fields: &[Field]) -> (Arc<[u16]>, Arc<[bool]>) {
    let mut next_same = vec![NO_FIELD; fields.len()];
    let mut repeat = vec![false; fields.len()];
    for i in 0..fields.len() {
        if repeat[i] {
            continue;
        }
        let mut last = i;
        for j in i + 1..fields.len() {
            if fields[j].name == fields[i].name {
                next_same[last] = j as u16;
                repeat[j] = true;
                last = j;
            }
        }
    }
    (next_same.into(), repeat.into())
}

/// The NetFlow v5 record (48 bytes) as a template of IPFIX elements, so v5 shares the flow view
/// and the encoder with v9 and IPFIX.
pub fn v5_template() -> &'static Template {
    use std::sync::OnceLock;
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let f = |id, len| FieldSpec { id, pen: 0, len };
        let specs = [
            f(8, 4),   // srcaddr
            f(12, 4),  // dstaddr
            f(15, 4),  // nexthop
            f(10, 2),  // input
            f(14, 2),  // output
            f(2, 4),   // dPkts
            f(1, 4),   // dOctets
            f(22, 4),  // first (sysUptime ms)
            f(21, 4),  // last
            f(7, 2),   // srcport
            f(11, 2),  // dstport
            f(210, 1), // pad1 (paddingOctets)
            f(6, 1),   // tcp_flags
            f(4, 1),   // prot
            f(5, 1),   // tos
            f(16, 2),  // src_as
            f(17, 2),  // dst_as
            f(9, 1),   // src_mask
            f(13, 1),  // dst_mask
            f(210, 2), // pad2
        ];
        match Template::compile(0, Dialect::V5, false, 0, &specs) {
            Ok(t) => t,
            Err(e) => unreachable!("static v5 layout compiles: {e}"),
        }
    })
}

impl Template {
    /// Serializes the definition (not the compiled plan) for persistence: template caches saved
    /// across restarts and the local store's per-block template table. Layout, big-endian:
    /// `id u16, dialect u8 (5|9|10), options u8, scope_count u16, n u16, n x (id u16, pen u32,
    /// len u16)`.
    pub fn write_definition(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.push(match self.dialect {
            Dialect::V5 => 5,
            Dialect::V9 => 9,
            Dialect::Ipfix => 10,
            Dialect::Sflow => 0x5f,
            Dialect::Syslog => 0x53,
            Dialect::VpcFlow => 0x56,
        });
        out.push(u8::from(self.options));
        out.extend_from_slice(&self.scope_count.to_be_bytes());
        out.extend_from_slice(&(self.fields.len() as u16).to_be_bytes());
        for f in self.fields.iter() {
            out.extend_from_slice(&f.spec.id.to_be_bytes());
            out.extend_from_slice(&f.spec.pen.to_be_bytes());
            out.extend_from_slice(&f.spec.len.to_be_bytes());
        }
    }

    /// Reads what [`Template::write_definition`] wrote and compiles it. Returns the template
    /// and the bytes consumed.
    pub fn read_definition(b: &[u8]) -> Result<(Template, usize), crate::DecodeError> {
        use crate::DecodeError::{InvalidTemplate, Truncated};
        let get = |at: usize, n: usize| b.get(at..at + n).ok_or(Truncated("template definition"));
        let u16_at = |at: usize| get(at, 2).map(|s| u16::from_be_bytes([s[0], s[1]]));
        let id = u16_at(0)?;
        let dialect = match get(2, 1)?[0] {
            5 => Dialect::V5,
            9 => Dialect::V9,
            10 => Dialect::Ipfix,
            0x5f => Dialect::Sflow,
            0x53 => Dialect::Syslog,
            0x56 => Dialect::VpcFlow,
            _ => return Err(InvalidTemplate("unknown dialect")),
        };
        let options = get(3, 1)?[0] != 0;
        let scope_count = u16_at(4)?;
        let n = usize::from(u16_at(6)?);
        let mut specs = Vec::with_capacity(n.min(1024));
        let mut pos = 8;
        for _ in 0..n {
            let s = get(pos, 8)?;
            specs.push(FieldSpec {
                id: u16::from_be_bytes([s[0], s[1]]),
                pen: u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                len: u16::from_be_bytes([s[6], s[7]]),
            });
            pos += 8;
        }
        let t = if dialect == Dialect::V5 {
            v5_template().clone()
        } else {
            Template::compile(id, dialect, options, scope_count, &specs)?
        };
        Ok((t, pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip() {
        let specs = [
            FieldSpec {
                id: 8,
                pen: 0,
                len: 4,
            },
            FieldSpec {
                id: 96,
                pen: 0,
                len: VARLEN,
            },
            FieldSpec {
                id: 1,
                pen: REVERSE_PEN,
                len: 8,
            },
            FieldSpec {
                id: 7,
                pen: 9,
                len: 2,
            },
        ];
        let t = Template::compile(300, Dialect::Ipfix, true, 1, &specs).expect("compiles");
        let mut b = Vec::new();
        t.write_definition(&mut b);
        let (back, used) = Template::read_definition(&b).expect("reads");
        assert_eq!(used, b.len());
        assert_eq!(back, t);
        for cut in 0..b.len() {
            assert!(Template::read_definition(&b[..cut]).is_err());
        }
        let mut b5 = Vec::new();
        v5_template().write_definition(&mut b5);
        assert_eq!(
            &Template::read_definition(&b5).expect("v5").0,
            v5_template()
        );
    }
}
