//! The operator's web surface beside the JSON API: the event stream (`events`), the
//! sandbox file proxy to agents (`files`) and the web UI's pages and assets (`assets`).
//! Route lines live in `crate::http::router`; the handlers here only translate to and
//! from service calls, like every HTTP handler.

pub mod assets;
pub mod events;
pub mod files;
