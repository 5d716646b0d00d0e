//! docs/fields.md is generated from the field table; this fails when they drift.

#[test]
fn fields_md_matches_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/fields.md");
    let on_disk = std::fs::read_to_string(path).expect("docs/fields.md exists");
    let generated = sluice_sink::schema::fields_markdown();
    assert!(
        on_disk == generated,
        "docs/fields.md is stale: regenerate with `cargo run --bin sluice -- fields --markdown > docs/fields.md`"
    );
}

#[test]
fn table_paths_are_unique_and_objects_contiguous() {
    use std::collections::HashSet;
    let rows = sluice_sink::schema::all_fields();
    let mut seen = HashSet::new();
    for r in &rows {
        assert!(seen.insert(r.path.clone()), "duplicate field {}", r.path);
    }
    // The encoder can only write each object once: fields of one parent must be adjacent.
    let mut closed: HashSet<String> = HashSet::new();
    let mut prev_parent = String::new();
    for f in sluice_sink::schema::ECS_FIELDS {
        let parent = f.path.rsplit_once('.').map_or("", |(p, _)| p).to_string();
        if parent != prev_parent {
            assert!(!closed.contains(&parent), "{} reopens {parent}", f.path);
            closed.insert(prev_parent.clone());
            prev_parent = parent;
        }
    }
}

#[test]
fn index_template_matches_the_table() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ops/elasticsearch/sluice-flows.index-template.json"
    );
    let on_disk = std::fs::read_to_string(path).expect("ops/elasticsearch template exists");
    let generated = sluice_sink::schema::index_template();
    assert!(
        on_disk == generated,
        "ops/elasticsearch/sluice-flows.index-template.json is stale: regenerate with `cargo run --bin sluice -- fields --index-template > ops/elasticsearch/sluice-flows.index-template.json`"
    );
    // Valid JSON whose mapping carries every field of the table with its type.
    let v: serde_json::Value = serde_json::from_str(&generated).expect("valid JSON");
    let props = &v["template"]["mappings"]["properties"];
    for r in sluice_sink::schema::all_fields() {
        let mut node = props;
        let parts: Vec<&str> = r.path.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            node = &node[*p];
            if i + 1 < parts.len() {
                node = &node["properties"];
            }
        }
        assert_eq!(node["type"], r.es.as_str(), "{}", r.path);
    }
}
