//! The HTTP side: `/metrics` in the Prometheus text format, `/` pointing at it.

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus::Registry;

use super::metrics::Metrics;

/// The content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router(registry: Registry) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = Metrics::render(&registry);
                async move { ([(header::CONTENT_TYPE, TEXT_FORMAT)], body) }
            }),
        )
        .route("/", get(index))
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><head><title>pinwatch</title></head><body><h1>pinwatch</h1>\
         <p><a href=\"/metrics\">Metrics</a></p></body></html>\n",
    )
}
