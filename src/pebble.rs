//! pebble, Let's Encrypt's test ACME server, on loopback: its own listener certificate from a
//! test CA, a config written at test time, and `pebble-challtestsrv` as its DNS server so every
//! name resolves to 127.0.0.1 (HTTP-01 validation then reaches the edge under test).

use crate::tls::TestCa;
use crate::{eventually, free_tcp_port, free_udp_port};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

/// Whether pebble and pebble-challtestsrv are installed (see [`crate::tools::installed`]).
pub fn available() -> anyhow::Result<bool> {
    crate::tools::installed(
        &["pebble", "pebble-challtestsrv"],
        "scripts/setup.d/50-pebble",
    )
}

/// Addresses and files of a pebble that may not run yet: the edge can be configured (and
/// started) before pebble exists, to exercise its retries.
pub struct PebblePlan {
    listen: SocketAddr,
    management: SocketAddr,
    dns: SocketAddr,
    dns_management: SocketAddr,
    tls_port: u16,
    tls_ca: TestCa,
    /// PEM of the CA behind pebble's own HTTPS listener: the edge's `acme.ca_root`.
    pub listener_ca: PathBuf,
    dir: PathBuf,
}

/// A running pebble (and its DNS server); both are killed when dropped.
pub struct Pebble {
    plan: PebblePlan,
    _children: Vec<Child>,
}

impl PebblePlan {
    /// Picks free ports and writes pebble's listener certificate into `dir`.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        let tls_ca = TestCa::new("pebble listener CA")?;
        tls_ca.issue(dir, "pebble-listener", &["127.0.0.1", "localhost"])?;
        let listener_ca = dir.join("pebble-listener-ca.pem");
        std::fs::write(&listener_ca, tls_ca.pem())?;
        Ok(Self {
            listen: free_tcp_port()?,
            management: free_tcp_port()?,
            dns: free_udp_port()?,
            dns_management: free_tcp_port()?,
            tls_port: free_tcp_port()?.port(),
            tls_ca,
            listener_ca,
            dir: dir.to_path_buf(),
        })
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://{}/dir", self.listen)
    }

    /// Starts pebble validating HTTP-01 on `http_port` (the edge's plain-HTTP port) and issuing
    /// certificates valid for `validity`; waits until its directory answers.
    pub async fn start(self, http_port: u16, validity: Duration) -> anyhow::Result<Pebble> {
        let log = std::fs::File::create(self.dir.join("pebble.log"))?;
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &self.dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &self.dns_management.to_string()])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .kill_on_drop(true)
            .spawn()
            .context("starting pebble-challtestsrv")?;
        let config = serde_json::json!({ "pebble": {
            "listenAddress": self.listen.to_string(),
            "managementListenAddress": self.management.to_string(),
            "certificate": self.dir.join("pebble-listener.crt"),
            "privateKey": self.dir.join("pebble-listener.key"),
            "httpPort": http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity.as_secs(),
        }});
        let config_path = self.dir.join("pebble-config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &self.dns.to_string()])
            // No random sleeps before validation, no random nonce rejections, and fresh
            // validations for every order. PEBBLE_VA_ALWAYS_VALID is NOT set: validation is real.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting pebble")?;
        let client = self.tls_ca.https_client()?;
        let url = self.directory();
        eventually(Duration::from_secs(30), "pebble's directory", || async {
            let r = client.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await?;
        Ok(Pebble {
            plan: self,
            _children: vec![dns, pebble],
        })
    }
}

impl Pebble {
    /// The root pebble issues under (PEM), for clients that verify served certificates.
    pub async fn issuing_root(&self) -> anyhow::Result<Vec<u8>> {
        let url = format!("https://{}/roots/0", self.plan.management);
        let r = self.plan.tls_ca.https_client()?.get(url).send().await?;
        anyhow::ensure!(r.status().is_success(), "pebble roots: {}", r.status());
        Ok(r.bytes().await?.to_vec())
    }

    /// pebble's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.plan.dir.join("pebble.log")).unwrap_or_default()
    }
}
