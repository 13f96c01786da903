//! Where a test or a benchmark lets this process connect: with [`ENV`] set (the test support sets
//! it on every operator and predictor process it starts), every HTTP client built by
//! [`crate::tls::bounded_client`] or [`open`](crate::fetch::open) and every HDFS client refuses,
//! at once and in words, a host outside the listed networks, instead of sending a DNS query or a
//! SYN to it and timing out. Unset (production), nothing is limited here.
//!
//! `MLOPS_EGRESS_ONLY=loopback` allows 127.0.0.0/8 and ::1 (and the name `localhost`); more
//! networks follow as CIDRs, e.g. `loopback,10.77.0.0/16` for the node tier's pod network. Names
//! other than `localhost` are refused without a lookup: resolving one would itself be a query to a
//! DNS server outside loopback.
//!
//! reqwest asks its resolver only for names; an IP literal goes straight to a socket. So a refused
//! literal is sent through a proxy whose name this module's resolver refuses, naming the literal
//! (`Proxy::custom` cannot fail a request itself, and the connector's layer cannot see the URI).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;

/// The variable that turns the limit on.
pub const ENV: &str = "MLOPS_EGRESS_ONLY";

/// The value that names loopback only.
pub const LOOPBACK: &str = "loopback";

/// The suffix of the proxy name that stands for a refused IP literal.
const REFUSED_SUFFIX: &str = ".egress-refused.invalid";

/// The networks a process may reach, as [`ENV`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    spec: String,
    networks: Vec<IpNet>,
}

impl Policy {
    /// Parses `loopback,10.77.0.0/16`-style lists.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == LOOPBACK {
                networks.push("127.0.0.0/8".parse().expect("a CIDR"));
                networks.push("::1/128".parse().expect("a CIDR"));
            } else {
                networks.push(part.parse().map_err(|_| {
                    format!("{ENV}: {part:?} is neither {LOOPBACK:?} nor a CIDR like 10.0.0.0/8")
                })?);
            }
        }
        if networks.is_empty() {
            return Err(format!("{ENV} is set but lists no network"));
        }
        Ok(Self {
            spec: spec.to_string(),
            networks,
        })
    }

    /// The policy of this process, read from [`ENV`] once; `None` when unset. An unparsable value
    /// panics at the first client built: it is set by test support, never by a user.
    pub fn from_env() -> Option<&'static Policy> {
        static POLICY: OnceLock<Option<Policy>> = OnceLock::new();
        POLICY
            .get_or_init(|| {
                std::env::var(ENV)
                    .ok()
                    .map(|spec| Policy::parse(&spec).unwrap_or_else(|e| panic!("{e}")))
            })
            .as_ref()
    }

    /// Whether `ip` is in one of the networks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// `host` (a name or an IP literal, IPv6 with or without brackets) if allowed; else why not.
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        match ip_literal(host) {
            Some(ip) if self.allows(ip) => Ok(()),
            Some(ip) => Err(self.refusal(&ip.to_string())),
            None if is_localhost(host) => Ok(()),
            None => Err(self.refusal(host)),
        }
    }

    fn refusal(&self, host: &str) -> String {
        format!(
            "egress refused: {host} is outside {ENV}={} (tests and benchmarks reach only loopback \
             and the network namespaces they create; name a loopback address)",
            self.spec
        )
    }

    /// `builder` with the limit installed: the resolver, and the proxy that routes refused IP
    /// literals to it.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder
            .dns_resolver(Arc::new(self.clone()))
            .proxy(self.literal_proxy())
    }

    /// The same for a blocking client.
    pub fn apply_blocking(
        &self,
        builder: reqwest::blocking::ClientBuilder,
    ) -> reqwest::blocking::ClientBuilder {
        builder
            .dns_resolver(Arc::new(self.clone()))
            .proxy(self.literal_proxy())
    }

    fn literal_proxy(&self) -> reqwest::Proxy {
        let policy = self.clone();
        reqwest::Proxy::custom(move |url| {
            let ip = ip_literal(url.host_str()?)?;
            if policy.allows(ip) {
                return None;
            }
            // Dots and colons become dashes: the literal travels as one DNS label.
            let label = ip.to_string().replace(['.', ':'], "-");
            Some(format!("http://{label}{REFUSED_SUFFIX}"))
        })
    }
}

/// The IP address `host` is written as (IPv6 with or without brackets), if it is one.
fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// `localhost` and its subdomains (RFC 6761: always loopback).
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

impl reqwest::dns::Resolve for Policy {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        let answer = if let Some(label) = name.strip_suffix(REFUSED_SUFFIX) {
            Err(self.refusal(&unlabel(label)))
        } else if is_localhost(&name) {
            let addrs: Vec<SocketAddr> =
                [IpAddr::V4(Ipv4Addr::LOCALHOST), Ipv6Addr::LOCALHOST.into()]
                    .into_iter()
                    .filter(|ip| self.allows(*ip))
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect();
            Ok(addrs)
        } else {
            Err(self.refusal(&name))
        };
        Box::pin(async move {
            answer
                .map(|addrs| Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
                .map_err(|e| e.into())
        })
    }
}

/// The IP literal a refused proxy label stands for (IPv4 if it has four numeric parts).
fn unlabel(label: &str) -> String {
    let v4 = label.replace('-', ".");
    if v4.parse::<Ipv4Addr>().is_ok() {
        v4
    } else {
        label.replace('-', ":")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn loopback() -> Policy {
        Policy::parse("loopback, 10.77.0.0/16").unwrap()
    }

    #[test]
    fn lists_parse_and_nonsense_is_refused() {
        let p = loopback();
        for ok in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "[::1]",
            "10.77.3.4",
            "localhost",
            "a.localhost",
        ] {
            assert_eq!(p.check_host(ok), Ok(()), "{ok}");
        }
        for refused in [
            "10.78.0.1",
            "169.254.169.254",
            "registry.local",
            "example.org",
            "::2",
        ] {
            let e = p.check_host(refused).unwrap_err();
            assert!(e.starts_with("egress refused: "), "{e}");
            assert!(e.contains(ENV), "{e}");
        }
        assert!(Policy::parse("").is_err());
        assert!(
            Policy::parse("10.0.0.0/33")
                .unwrap_err()
                .contains("10.0.0.0/33")
        );
    }

    /// A real client, a real loopback server: loopback answers, while a name and an IP literal
    /// outside the list fail at once (no DNS query, no SYN) saying why.
    #[tokio::test]
    async fn a_client_reaches_loopback_and_refuses_the_rest_at_once() {
        let files = crate::testing::FileServer::start();
        let ok_url = files.put("/ok", b"fine".to_vec());
        let client = loopback()
            .apply(crate::tls::bounded_client(
                Duration::from_secs(20),
                Duration::from_secs(20),
            ))
            .build()
            .unwrap();
        let body = client
            .get(&ok_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "fine");
        let ok = client
            .get(ok_url.replace("127.0.0.1", "localhost"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        for (url, named) in [
            ("http://registry.local/v2/", "registry.local"),
            ("https://10.99.0.1:8443/m", "10.99.0.1"),
            ("http://[2001:db8::7]/m", "2001:db8::7"),
        ] {
            let started = Instant::now();
            let e = client.get(url).send().await.unwrap_err();
            let told = crate::transport::describe_reqwest(&e);
            assert!(
                told.contains(&format!("egress refused: {named} is outside {ENV}")),
                "{url}: {told}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{url} took {:?}",
                started.elapsed()
            );
        }
    }
}
