//! Offline evaluation of one request, for `agent policy test`.
