//! Bounded HTTP GETs of identity-provider documents (JWKS, discovery, user info): one home
//! for the accept header, the status check and the size cap.

/// Larger documents are refused (real ones are a few KiB).
pub const MAX_DOCUMENT: usize = 1024 * 1024;

/// The body of `url` (JSON asked for; with a bearer token when given), at most
/// [`MAX_DOCUMENT`] bytes; the error names what failed.
pub async fn get_document(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<Vec<u8>, String> {
    let mut req = client
        .get(url)
        .header(http::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let mut res = req.send().await.map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("status {}", res.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err("document larger than 1 MiB".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
