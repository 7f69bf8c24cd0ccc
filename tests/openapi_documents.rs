//! Public OpenAPI documents (tests/fixtures/openapi: ReadMe's `@readme/oas-examples`, MIT,
//! and the Swagger Petstore) through the `openapi` kind, each loaded by a real target from
//! its file: every document gives tools, every tool name is valid, every schema is already
//! in the Gateway subset (normalizing again changes nothing), and what cannot be mapped is
//! reported per operation instead of failing the document.

use std::path::{Path, PathBuf};

use mcp_sidecar::catalog::naming::is_valid_name;
use mcp_sidecar::catalog::schema::normalize_for_gateway;
use mcp_sidecar::config::Config;
use serde_json::Value;

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi");
    let mut files = Vec::new();
    for version in ["3.0", "3.1"] {
        for entry in std::fs::read_dir(root.join(version)).unwrap() {
            let path = entry.unwrap().path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "json")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    files
}

fn config_for(spec: &Path) -> Config {
    let text = format!(
        "[[targets]]\nname = \"api\"\nkind = \"openapi\"\nspec = {:?}\nbase_url = \"http://127.0.0.1:9/\"\n",
        spec.display().to_string()
    );
    Config::parse(&text, &|_| None).unwrap()
}

#[tokio::test]
async fn every_document_maps_to_valid_tools() {
    let mut report = Vec::new();
    for file in documents() {
        let config = config_for(&file);
        let target = mcp_sidecar::targets::build(&config.targets[0]).unwrap();
        let listing = target
            .sync()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let inspected = target.inspect().await;
        report.push(format!(
            "{}: {} tools\n  {}",
            file.display(),
            listing.tools.len(),
            inspected.join("\n  ")
        ));
        assert!(
            !listing.tools.is_empty()
                || inspected.iter().any(|l| l.contains("webhooks are ignored")),
            "{}: no tools",
            file.display()
        );
        let mut names = std::collections::BTreeSet::new();
        for tool in &listing.tools {
            let name = tool["name"].as_str().unwrap();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{}: tool name {name}",
                file.display()
            );
            assert!(names.insert(name.to_string()), "{name} twice");
            assert!(tool["description"].as_str().is_some_and(|d| !d.is_empty()));
            for key in ["inputSchema", "outputSchema"] {
                let Some(schema) = tool.get(key) else {
                    assert_eq!(key, "outputSchema", "{name} has no inputSchema");
                    continue;
                };
                assert_eq!(schema["type"], "object", "{}: {name} {key}", file.display());
                let (again, changes) = normalize_for_gateway(schema);
                assert!(
                    changes.is_empty() && &again == schema,
                    "{}: {name} {key} is not in the subset: {changes:?}",
                    file.display()
                );
                if key == "outputSchema" {
                    continue;
                }
                for property in schema["properties"].as_object().unwrap().keys() {
                    assert!(
                        is_valid_name(property) || property.contains('.'),
                        "{}: {name} argument `{property}`",
                        file.display()
                    );
                }
            }
        }
    }
    println!("{}", report.join("\n"));
}

#[tokio::test]
async fn the_petstore_maps_as_expected() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi/3.0/petstore.json");
    let config = config_for(&file);
    let target = mcp_sidecar::targets::build(&config.targets[0]).unwrap();
    let listing = target.sync().await.unwrap();
    let tool = |name: &str| -> Value {
        Value::Object(
            listing
                .tools
                .iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("no tool {name}"))
                .clone(),
        )
    };
    let names: Vec<&str> = listing
        .tools
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 20, "{names:?}");
    let find = tool("findPetsByStatus");
    assert_eq!(
        find["inputSchema"]["required"],
        serde_json::json!(["status"])
    );
    assert_eq!(find["inputSchema"]["properties"]["status"]["type"], "array");
    assert_eq!(
        find["outputSchema"]["properties"]["result"]["type"],
        "array"
    );
    assert_eq!(find["annotations"]["readOnlyHint"], true);
    let add = tool("addPet");
    let props = add["inputSchema"]["properties"].as_object().unwrap();
    assert!(
        props.contains_key("name") && props.contains_key("photoUrls"),
        "{props:?}"
    );
    assert_eq!(
        add["inputSchema"]["required"],
        serde_json::json!(["name", "photoUrls"])
    );
    let delete = tool("deletePet");
    assert_eq!(delete["annotations"]["destructiveHint"], true);
    assert!(delete["inputSchema"]["properties"].get("api_key").is_some());
    let notes = target.inspect().await.join("\n");
    assert!(
        notes.contains("uploadFile (POST /pet/{petId}/uploadImage): optional request body [multipart/form-data] is not supported and never sent"),
        "{notes}"
    );
    assert!(
        notes.contains("security schemes api_key (apiKey in header `api_key`)"),
        "{notes}"
    );
}
