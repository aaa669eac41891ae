//! A small cookie-keeping browser for sign-in flows: follows redirects itself (so each hop is
//! visible), keeps cookies per host the way a browser would for these tests (name → value,
//! deleted by `Max-Age=0` or a past `Expires`), and submits HTML forms.

use anyhow::{bail, Context as _};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode, Url};
use std::collections::BTreeMap;

/// One answer the browser got, after following redirects.
#[derive(Debug)]
pub struct Page {
    /// Where it came from.
    pub url: Url,
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body as text.
    pub body: String,
    /// Every URL visited on the way, the first request's included.
    pub hops: Vec<Url>,
}

/// A cookie-keeping client (every name resolves to 127.0.0.1, like [`crate::client`]).
pub struct Browser {
    http: reqwest::Client,
    /// host:port → cookie name → value.
    jar: BTreeMap<String, BTreeMap<String, String>>,
    /// A redirect to this path is not followed (see [`Browser::stop_before`]).
    stop: Option<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

fn origin(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl Browser {
    /// An empty browser.
    pub fn new() -> Self {
        let http = crate::client::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("reqwest client: {e}"));
        Self {
            http,
            jar: BTreeMap::new(),
            stop: None,
        }
    }

    /// From now on, a redirect to `path` is not followed: the page returned is the redirect
    /// itself, with `url` the target it names (e.g. to hold on to a one-time code).
    pub fn stop_before(&mut self, path: &str) {
        self.stop = Some(path.to_string());
    }

    /// The cookie `name` held for `url`'s host.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).ok()?;
        self.jar.get(&origin(&url))?.get(name).cloned()
    }

    /// Sets (or replaces) a cookie for `url`'s host, as a user or attacker could.
    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) -> anyhow::Result<()> {
        let url = Url::parse(url)?;
        self.jar
            .entry(origin(&url))
            .or_default()
            .insert(name.into(), value.into());
        Ok(())
    }

    /// GET `url`, following redirects.
    pub async fn get(&mut self, url: &str) -> anyhow::Result<Page> {
        self.go(Method::GET, Url::parse(url)?, None, &[]).await
    }

    /// GET `url` with extra headers, following redirects.
    pub async fn get_with(&mut self, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Page> {
        self.go(Method::GET, Url::parse(url)?, None, headers).await
    }

    /// Submits the first form of `page` with its hidden fields plus `fields`.
    pub async fn submit(&mut self, page: &Page, fields: &[(&str, &str)]) -> anyhow::Result<Page> {
        let action = attr_after(&page.body, "<form", "action")
            .with_context(|| format!("no form on {}: {}", page.url, page.body))?;
        let target = page.url.join(&html_unescape(&action))?;
        let mut form: Vec<(String, String)> = hidden_inputs(&page.body);
        for (k, v) in fields {
            form.retain(|(name, _)| name != k);
            form.push((k.to_string(), v.to_string()));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        self.go(Method::POST, target, Some(body), &[]).await
    }

    async fn go(
        &mut self,
        mut method: Method,
        mut url: Url,
        mut form: Option<String>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Page> {
        let mut hops = Vec::new();
        for _ in 0..20 {
            hops.push(url.clone());
            let mut req = self.http.request(method.clone(), url.clone());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(cookies) = self.cookie_header(&url) {
                req = req.header(COOKIE, cookies);
            }
            if let Some(body) = form.take() {
                req = req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
            }
            let res = req
                .send()
                .await
                .with_context(|| format!("{method} {url}"))?;
            self.store(&url, res.headers());
            let status = res.status();
            let location = res.headers().get(LOCATION).cloned();
            if status.is_redirection() {
                if let Some(loc) = location {
                    url = url.join(loc.to_str()?)?;
                    if self.stop.as_deref() == Some(url.path()) {
                        return Ok(Page {
                            url,
                            status,
                            headers: res.headers().clone(),
                            body: String::new(),
                            hops,
                        });
                    }
                    if status != StatusCode::TEMPORARY_REDIRECT
                        && status != StatusCode::PERMANENT_REDIRECT
                    {
                        method = Method::GET;
                    }
                    continue;
                }
            }
            let headers = res.headers().clone();
            let body = res.text().await?;
            return Ok(Page {
                url,
                status,
                headers,
                body,
                hops,
            });
        }
        bail!("more than 20 redirects: {hops:?}")
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let jar = self.jar.get(&origin(url))?;
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn store(&mut self, url: &Url, headers: &HeaderMap) {
        let jar = self.jar.entry(origin(url)).or_default();
        for h in headers.get_all(SET_COOKIE) {
            let Ok(text) = h.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let gone = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || (a.starts_with("expires=") && a.contains("1970"))
            });
            if gone {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }
}

/// The value of attribute `attr` in the first tag starting with `tag`.
fn attr_after(html: &str, tag: &str, attr: &str) -> Option<String> {
    let start = html.find(tag)?;
    let end = start + html[start..].find('>')?;
    attr_value(&html[start..end], attr)
}

fn attr_value(tag: &str, attr: &str) -> Option<String> {
    let key = format!("{attr}=\"");
    let i = tag.find(&key)? + key.len();
    let j = i + tag[i..].find('"')?;
    Some(tag[i..j].to_string())
}

/// `name`/`value` of every `<input type="hidden">`.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.match_indices("<input")
        .filter_map(|(i, _)| {
            let end = i + html[i..].find('>')?;
            let tag = &html[i..end];
            if !tag.contains("type=\"hidden\"") {
                return None;
            }
            Some((
                html_unescape(&attr_value(tag, "name")?),
                html_unescape(&attr_value(tag, "value").unwrap_or_default()),
            ))
        })
        .collect()
}

fn html_unescape(s: &str) -> String {
    s.replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
