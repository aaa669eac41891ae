//! Each action run through the engine on whole policies, one file per action.

mod basic_auth;
mod circuit_breaker;
mod compress_response;
mod find_replace;
mod forward_internal;
mod headers;
mod http_request;
mod jwt_validation;
mod login;
mod owasp_crs;
mod rate_limit;
mod redirect;
mod respond;
mod restrict_ips;
mod tcp_connect;
mod terminate_tls;
mod vars;
mod verify_webhook;
