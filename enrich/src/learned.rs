//! Enrichment inputs that do not come from the [`crate::Enricher`]'s own tables:
//!
//! - [`Learned`]: what an exporter's options data told about one flow (sampler tables,
//!   interface names), captured from the decoder's [`ScopeTables`] when the flow was decoded,
//!   so that enrichment can run later on another thread (the collector's store thread) that
//!   has no decoder;
//! - [`Kept`]: the enrichment values kept with a stored flow (the local store's enrichment
//!   columns), which [`crate::Enricher::enrich_kept`] uses instead of looking anything up.

use std::sync::Arc;

use sluice_decode::{Flow, ScopeTables};

use crate::enricher::SamplingSource;
use crate::geoip::GeoInfo;

/// An interface's texts from the exporter's options data (IE 82/83), or as kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfTexts<'a> {
    /// interfaceName.
    pub name: Option<&'a str>,
    /// interfaceDescription.
    pub description: Option<&'a str>,
}

/// What the scope's options data gives one flow. The exporter's configured overrides and the
/// record's own sampling still win over it: [`crate::Enricher::enrich_learned`] applies the
/// same precedence as [`crate::Enricher::enrich`] (which builds a `Learned` from the tables).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learned<'a> {
    /// The sampler table's interval for the record's sampler id ([`SamplingSource::Sampler`]),
    /// else the interval the scope announced without an id ([`SamplingSource::Scope`]).
    pub sampling: Option<(u32, SamplingSource)>,
    /// Input interface.
    pub in_if: IfTexts<'a>,
    /// Output interface.
    pub out_if: IfTexts<'a>,
}

impl<'a> Learned<'a> {
    /// Nothing learned: the same as `== Learned::default()`, read field by field (comparing
    /// with a default built on the stack read back bytes just written in other widths, a
    /// store-forwarding stall per record on the store thread).
    pub fn is_empty(&self) -> bool {
        self.sampling.is_none()
            && self.in_if.name.is_none()
            && self.in_if.description.is_none()
            && self.out_if.name.is_none()
            && self.out_if.description.is_none()
    }

    /// Looks a flow's sampler id and interfaces up in its scope's tables. Cheap when the
    /// tables are empty (most exporters send no options data): nothing is looked up then.
    pub fn from_tables(
        tables: Option<&'a ScopeTables>,
        sampler_id: Option<u64>,
        in_if: Option<u32>,
        out_if: Option<u32>,
    ) -> Learned<'a> {
        let Some(t) = tables else {
            return Learned::default();
        };
        let sampling = if t.samplers.is_empty() {
            None
        } else {
            sampler_id
                .and_then(|id| t.samplers.get(&id).copied())
                .filter(|&n| n > 0)
                .map(|n| (n, SamplingSource::Sampler))
                .or_else(|| {
                    t.samplers
                        .get(&u64::MAX)
                        .copied()
                        .filter(|&n| n > 0)
                        .map(|n| (n, SamplingSource::Scope))
                })
        };
        let iface = |i: Option<u32>| {
            if t.interfaces.is_empty() {
                return IfTexts::default();
            }
            i.and_then(|i| t.interfaces.get(&i))
                .map_or_else(IfTexts::default, |l| IfTexts {
                    name: l.name.as_deref(),
                    description: l.description.as_deref(),
                })
        };
        Learned {
            sampling,
            in_if: iface(in_if),
            out_if: iface(out_if),
        }
    }

    /// [`Learned::from_tables`] for a decoded flow.
    pub fn of_flow(tables: Option<&'a ScopeTables>, flow: &Flow) -> Learned<'a> {
        Learned::from_tables(tables, flow.sampler_id, flow.in_if, flow.out_if)
    }
}

/// One end of a flow as kept.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeptEnd<'a> {
    /// Geolocation.
    pub geo: Option<&'a GeoInfo>,
    /// AS number (the AS database's, else the record's own).
    pub as_number: Option<u32>,
    /// AS organization.
    pub as_organization: Option<&'a Arc<str>>,
}

/// Enrichment values kept with a stored flow: what the databases, the configuration and the
/// exporter's options data gave when it was received. Everything else enrichment adds
/// (locality, names, flags, community ID, direction, scaled counts) follows from the record
/// and is computed again.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kept<'a> {
    /// `observer.name`.
    pub exporter_name: Option<&'a str>,
    /// Source end.
    pub source: KeptEnd<'a>,
    /// Destination end.
    pub destination: KeptEnd<'a>,
    /// Sampling interval applied and where it came from.
    pub sampling: Option<(u32, SamplingSource)>,
    /// Input interface texts.
    pub in_if: IfTexts<'a>,
    /// Output interface texts.
    pub out_if: IfTexts<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_empty_is_equality_with_the_default() {
        assert!(Learned::default().is_empty());
        let t = IfTexts {
            name: Some("ge-0/0/1"),
            description: None,
        };
        let d = IfTexts {
            name: None,
            description: Some("uplink"),
        };
        // Each value on its own: the sampling, and either text on either end.
        let mut some = vec![Learned {
            sampling: Some((100, SamplingSource::Sampler)),
            ..Learned::default()
        }];
        for texts in [t, d] {
            some.push(Learned {
                in_if: texts,
                ..Learned::default()
            });
            some.push(Learned {
                out_if: texts,
                ..Learned::default()
            });
        }
        for l in some {
            assert!(!l.is_empty(), "{l:?}");
            assert_ne!(l, Learned::default());
        }
    }
}
