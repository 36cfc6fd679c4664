//! The OpenAPI 3.1 document, generated from the route table and the wire types' JSON Schemas
//! (OpenAPI 3.1 speaks JSON Schema 2020-12, which is what `schemars` writes), so the document
//! cannot describe a route or a shape the daemon does not serve.

use std::sync::OnceLock;

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::routes::{Answer, RouteSpec, route_specs};

/// The document for this build; the route table is fixed, so it is rendered once.
pub fn document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| render(&route_specs())).clone()
}

/// The path as OpenAPI writes it: axum's catch-all `{*path}` is a plain `{path}` parameter.
pub fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

fn render(specs: &[RouteSpec]) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    for spec in specs {
        let op = operation(spec, &mut generator);
        let item = paths
            .entry(openapi_path(spec.path))
            .or_insert_with(|| json!({}));
        item[spec.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "kaged",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP + WebSocket API of kaged (design §5). Every route sits \
                behind the same gate: a Host allowlist, an exact Origin check and a CSRF token \
                (`X-Kaged-CSRF`, from `GET /api/v1/me`) on state-changing requests and upgrades, \
                and auth: the loopback session cookie, the local nonce as a bearer token (the \
                CLI), or the sidecar header contract of ADR-0007. Errors are one envelope: \
                `{\"error\": {\"code\", \"message\", \"details\"?}}`.",
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": security_schemes(),
        },
    })
}

fn operation(spec: &RouteSpec, generator: &mut SchemaGenerator) -> Value {
    let mut op = json!({
        "operationId": operation_id(spec),
        "summary": spec.summary,
        "security": security(spec),
        "responses": responses(spec, generator),
    });
    let mut parameters: Vec<Value> = path_parameters(spec.path);
    if let Some(query) = spec.query {
        parameters.extend(query_parameters(query(generator), generator));
    }
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    if let Some(body) = spec.body {
        op["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": body(generator)}},
        });
    }
    op
}

fn operation_id(spec: &RouteSpec) -> String {
    let slug: String = spec
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let slug = slug.trim_matches('_').replace("__", "_");
    let slug = if slug.is_empty() {
        "index".to_owned()
    } else {
        slug
    };
    format!("{}_{slug}", spec.method.as_str().to_ascii_lowercase())
}

fn path_parameters(path: &str) -> Vec<Value> {
    openapi_path(path)
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "schema": {"type": "string", "minLength": 1}})
        })
        .collect()
}

/// Each property of the query type becomes one optional query parameter.
fn query_parameters(reference: schemars::Schema, generator: &SchemaGenerator) -> Vec<Value> {
    let name = reference
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default();
    let properties = generator
        .definitions()
        .get(name)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    properties
        .into_iter()
        .map(|(name, schema)| json!({"name": name, "in": "query", "required": false, "schema": schema}))
        .collect()
}

fn responses(spec: &RouteSpec, generator: &mut SchemaGenerator) -> Value {
    let error = json!({
        "description": "An error, in the one envelope of design §5",
        "content": {"application/json": {"schema": generator.subschema_for::<kaged_api::ErrorEnvelope>()}},
    });
    let success = match spec.answer {
        Answer::Json(schema) => json!({"200": {
            "description": "OK",
            "content": {"application/json": {"schema": schema(generator)}},
        }}),
        Answer::Document => json!({"200": {
            "description": "A JSON document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }}),
        Answer::Bytes => json!({"200": {
            "description": "Raw bytes",
            "headers": {
                "X-Kaged-Offset": {"schema": {"type": "integer", "minimum": 0}},
                "X-Kaged-Bytes-Total": {"schema": {"type": "integer", "minimum": 0}},
            },
            "content": {"application/octet-stream": {}},
        }}),
        Answer::Page => json!({"200": {
            "description": "A page or an asset of the web UI",
            "content": {"*/*": {}},
        }}),
        Answer::Redirect => json!({"303": {
            "description": "Signed in: the session cookie is set and the browser goes to /",
            "headers": {
                "Location": {"schema": {"type": "string"}},
                "Set-Cookie": {"schema": {"type": "string"}},
            },
        }}),
        Answer::Upgrade(schema) => json!({"101": {
            "description": "Switching to WebSocket; text frames carry the message type given \
                            under x-websocket-message",
            "x-websocket-message": schema(generator),
        }}),
    };
    let mut all = success;
    all["default"] = error;
    all
}

/// The alternatives of ADR-0007: any one of them authenticates; state-changing requests and
/// upgrades also need the CSRF token.
fn security(spec: &RouteSpec) -> Value {
    if !spec.auth {
        return json!([]);
    }
    let alternatives: [&[&str]; 3] = [
        &["loopbackCookie"],
        &["localNonce"],
        &["sidecarNonce", "sidecarUser"],
    ];
    let list: Vec<Value> = alternatives
        .iter()
        .map(|schemes| {
            let mut req = Map::new();
            for s in schemes.iter() {
                req.insert((*s).to_owned(), json!([]));
            }
            if spec.csrf {
                req.insert("csrf".to_owned(), json!([]));
            }
            Value::Object(req)
        })
        .collect();
    Value::Array(list)
}

fn security_schemes() -> Value {
    json!({
        "loopbackCookie": {
            "type": "apiKey", "in": "cookie", "name": "kaged_session_<port>",
            "description": "Loopback mode: the session cookie set by /launch; its name carries \
                            the daemon's port.",
        },
        "localNonce": {
            "type": "http", "scheme": "bearer",
            "description": "Loopback mode: the per-start nonce from the 0600 auth-cookie file, \
                            as the CLI sends it.",
        },
        "sidecarNonce": {"type": "apiKey", "in": "header", "name": "X-Kaged-Auth-Nonce"},
        "sidecarUser": {"type": "apiKey", "in": "header", "name": "X-Kaged-User-Id"},
        "csrf": {"type": "apiKey", "in": "header", "name": "X-Kaged-CSRF"},
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;

    use super::*;

    /// `docs/openapi.json` is the same document, committed so the README can link it.
    #[test]
    fn the_committed_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let fresh = format!("{}\n", serde_json::to_string_pretty(&document()).unwrap());
        kaged_api::generated::check_generated(&path, &fresh, "kaged-http").unwrap();
    }

    #[test]
    fn every_route_in_the_table_is_in_the_document_and_nothing_else() {
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, _) in item.as_object().unwrap() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let table: BTreeSet<(String, String)> = route_specs()
            .iter()
            .map(|s| (s.method.as_str().to_owned(), openapi_path(s.path)))
            .collect();
        assert_eq!(documented, table);
    }

    #[test]
    fn every_reference_resolves_to_a_component() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (i, _) in text.match_indices("#/components/schemas/") {
            let rest = &text[i + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "dangling $ref to {name}");
        }
        assert!(schemas.contains_key("SessionInfo"));
        assert!(schemas.contains_key("ErrorEnvelope"));
    }

    #[test]
    fn operations_carry_their_security_and_parameters() {
        let doc = document();
        let create = &doc["paths"]["/api/v1/projects/{id}/sessions"]["post"];
        assert_eq!(create["parameters"][0]["name"], "id");
        assert!(
            create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap()
                .ends_with("/StartSession")
        );
        assert!(create["security"][0].get("csrf").is_some());
        assert_eq!(
            doc["paths"]["/api/v1/healthz"]["get"]["security"],
            json!([])
        );
        let audit = &doc["paths"]["/api/v1/audit"]["get"]["parameters"];
        let names: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"limit") && names.contains(&"type"),
            "{names:?}"
        );
    }
}
