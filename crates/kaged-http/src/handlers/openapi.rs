//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this API, generated from the route
//! table and the wire types, so it cannot drift from what is served.

use axum::Json;

pub(crate) async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}
