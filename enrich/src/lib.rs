//! Flow enrichment (GeoIP/AS, names, sampling, community ID). Filled in by the enrichment work.
