//! The exports hold to their published schemas: HAR against HAR 1.2 (the `har-schema` package's
//! schema, vendored under schema/har with its licence), OpenAPI against the official OpenAPI 3.1
//! schema (schema/openapi). The inputs are every golden record of tests/golden, read back into
//! the typed exchange, plus synthetic exchanges with JSON bodies.

use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use vxtap_report::har::HarWriter;
use vxtap_report::openapi::{OpenApiBuilder, OpenApiConfig};
use vxtap_sink::ExchangeReader;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden_exchanges() -> Vec<vxtap_http::Exchange> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let r = ExchangeReader::new(std::io::BufReader::new(std::fs::File::open(&f).unwrap()));
        for ex in r {
            out.push(ex.unwrap());
        }
    }
    assert!(out.len() > 50, "golden records missing");
    out
}

/// The har-schema files as one document: each file under `definitions`, `$ref: "x.json#"`
/// pointed at it (the files refer to each other by relative name).
fn har_schema() -> Value {
    fn rewrite(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("$id");
                o.remove("$schema");
                if let Some(Value::String(r)) = o.get_mut("$ref") {
                    *r = format!("#/definitions/{}", r.trim_end_matches('#'));
                }
                o.values_mut().for_each(rewrite);
            }
            Value::Array(a) => a.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    let dir = root().join("schema/har");
    let mut defs = Map::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            rewrite(&mut v);
            defs.insert(p.file_name().unwrap().to_string_lossy().into_owned(), v);
        }
    }
    assert!(defs.len() >= 18, "HAR schema files missing");
    json!({
        "$schema": "http://json-schema.org/draft-06/schema#",
        "$ref": "#/definitions/har.json",
        "definitions": defs,
    })
}

#[test]
fn har_of_every_golden_record_validates_against_har_1_2() {
    let schema = har_schema();
    let validator = jsonschema::options().build(&schema).unwrap();
    let mut w = HarWriter::new(Vec::new(), "test").unwrap();
    for ex in golden_exchanges() {
        w.write(&ex).unwrap();
    }
    assert!(w.written() > 50);
    let doc: Value = serde_json::from_slice(&w.finish().unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .take(10)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // The validator does reject what breaks the schema.
    let mut broken = doc.clone();
    broken["log"]["entries"][0]["request"]
        .as_object_mut()
        .unwrap()
        .remove("url");
    assert!(!validator.is_valid(&broken));
}

fn openapi_validator() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(root().join("schema/openapi/openapi-3.1.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options().build(&schema).unwrap()
}

#[test]
fn openapi_of_every_golden_record_validates_against_openapi_3_1() {
    let validator = openapi_validator();
    let mut b = OpenApiBuilder::new(OpenApiConfig::default());
    for ex in golden_exchanges() {
        b.add(&ex);
    }
    let doc = b.document("golden", "test");
    assert!(doc["paths"].as_object().unwrap().len() > 3);
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .take(10)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("info");
    assert!(!validator.is_valid(&broken));
}
