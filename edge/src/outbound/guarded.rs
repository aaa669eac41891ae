//! A reqwest client whose every connection obeys the address rules: names resolve only to
//! allowed addresses, redirects it follows are checked hop by hop, and callers check an
//! address written in a URL with [`GuardedClient::check`]. The policy caller, the JWKS cache
//! and the sign-in service all fetch through one, since policies choose all their URLs.

use super::rules::{AddressRules, GuardedResolver, Refused};
use std::error::Error as _;
use std::net::IpAddr;
use std::sync::Arc;
use url::{Host, Url};

/// A client and the rules it obeys.
#[derive(Clone)]
pub struct GuardedClient {
    client: reqwest::Client,
    rules: AddressRules,
}

impl GuardedClient {
    /// Builds `builder` under `rules`, following at most `follow` redirects itself (each target
    /// checked; with 0 a redirect is the answer). Proxy environment variables are ignored: a proxy would connect where the rules
    /// cannot see.
    pub fn new(
        rules: &AddressRules,
        builder: reqwest::ClientBuilder,
        follow: usize,
    ) -> Result<Self, reqwest::Error> {
        let hops = rules.clone();
        let redirect = if follow == 0 {
            // A redirect is then the answer.
            reqwest::redirect::Policy::none()
        } else {
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > follow {
                    attempt.error(format!("more than {follow} redirects"))
                } else if let Err(refused) = check(&hops, attempt.url()) {
                    attempt.error(refused)
                } else {
                    attempt.follow()
                }
            })
        };
        let client = builder
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(rules.clone())))
            .redirect(redirect)
            .build()?;
        Ok(Self {
            client,
            rules: rules.clone(),
        })
    }

    /// The client, for one request to a URL [`GuardedClient::check`] passed.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// An address written in the URL never goes through the resolver, so it is checked here.
    pub fn check(&self, url: &Url) -> Result<(), Refused> {
        check(&self.rules, url)
    }

    /// [`GuardedClient::check`] for a URL as text (one that does not parse is left to the
    /// request, which fails on it).
    pub fn check_str(&self, url: &str) -> Result<(), Refused> {
        Url::parse(url).map_or(Ok(()), |u| self.check(&u))
    }
}

fn check(rules: &AddressRules, url: &Url) -> Result<(), Refused> {
    let ip: IpAddr = match url.host() {
        Some(Host::Ipv4(v4)) => v4.into(),
        Some(Host::Ipv6(v6)) => v6.into(),
        _ => return Ok(()),
    };
    rules.check(url.host_str().unwrap_or_default(), ip)
}

/// Why a request failed, in words: the rules' refusal when that was the cause, else reqwest's
/// message (which names only the URL) with its root cause. `Err(refused)` when the rules
/// refused it, so callers can report that apart.
pub fn describe(e: &reqwest::Error) -> Result<String, String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.source();
    let mut root = None;
    while let Some(c) = cause {
        if let Some(refused) = c.downcast_ref::<Refused>() {
            return Err(refused.to_string());
        }
        root = Some(c.to_string());
        cause = c.source();
    }
    let what = e.to_string();
    let what = what.split(" for url (").next().unwrap_or(&what).to_string();
    Ok(match root {
        _ if e.is_timeout() => format!("{what}: timed out"),
        Some(root) => format!("{what}: {root}"),
        None => what,
    })
}
