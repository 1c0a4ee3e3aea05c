//! The `syslog-server` and `syslog-ca` properties: where the appliance forwards
//! its journal (the audit trail included), as RFC 5424 messages over TLS
//! (RFC 5425), and the CA the receiver's certificate must chain to. Rendered
//! into an rsyslog configuration that first boot includes; the receiver's name
//! is checked against its certificate (`x509/name`), never only its chain.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::{PropertyError, bad, check_hostname, check_pem};

/// RFC 5425's port for syslog over TLS.
pub(super) const DEFAULT_PORT: u16 = 6514;

/// Where the journal goes, and whom to believe it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RemoteSyslog {
    /// A host name (lower case) or an IP address, as the certificate names it.
    host: String,
    port: u16,
    ca_pem: String,
}

impl RemoteSyslog {
    /// Both properties, or neither: a receiver without a CA to check it
    /// against would take the audit trail to whoever answers.
    pub(super) fn from_properties(
        server: Option<&str>,
        ca: Option<&str>,
    ) -> Result<Option<RemoteSyslog>, PropertyError> {
        let Some(server) = server else {
            return match ca {
                Some(_) => Err(bad("syslog-ca", "given without syslog-server")),
                None => Ok(None),
            };
        };
        let (host, port) = split_host_port(server).map_err(|why| bad("syslog-server", why))?;
        let ca = ca.ok_or_else(|| {
            bad(
                "syslog-ca",
                "needed with syslog-server: the receiver's TLS certificate is checked against it",
            )
        })?;
        let ca_pem = check_pem(ca).map_err(|why| bad("syslog-ca", why))?;
        Ok(Some(RemoteSyslog { host, port, ca_pem }))
    }

    /// `rsyslog-forward.conf` and `syslog-ca.pem`, for a folder installed at `dir`.
    pub(super) fn files(&self, dir: &str) -> Vec<(&'static str, String)> {
        let mut conf = String::from(
            "# Written by keyward from the VM's syslog-server and syslog-ca properties:\n\
             # the journal, forwarded as RFC 5424 messages over TLS (RFC 5425).\n",
        );
        let _ = writeln!(
            conf,
            "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{dir}/syslog-ca.pem\")"
        );
        let _ = writeln!(
            conf,
            "action(type=\"omfwd\" target=\"{host}\" port=\"{port}\" protocol=\"tcp\"\n\
             \x20   StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\"\n\
             \x20   StreamDriverPermittedPeers=\"{host}\" TCP_Framing=\"octet-counted\"\n\
             \x20   template=\"RSYSLOG_SyslogProtocol23Format\"\n\
             \x20   queue.type=\"LinkedList\" queue.filename=\"keyward-forward\" queue.maxDiskSpace=\"256m\"\n\
             \x20   queue.saveOnShutdown=\"on\" action.resumeRetryCount=\"-1\")",
            host = self.host,
            port = self.port,
        );
        vec![
            ("rsyslog-forward.conf", conf),
            ("syslog-ca.pem", self.ca_pem.clone()),
        ]
    }

    /// For the console summary.
    pub(super) fn describe(&self) -> String {
        format!("{}:{} over TLS", self.host, self.port)
    }
}

/// `host`, `host:port`, `a.b.c.d:port` or `[v6]:port`; the port defaults to 6514.
fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: an IPv6 address is written [address]:port"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{text:?}: expected :port after ]"))?,
            ),
        };
        (v6, port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(format!("{text:?}: write an IPv6 address as [address]:port")),
            None => (text, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port number (1-65535)"))?,
    };
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) if text.starts_with('[') => return Err(format!("{host:?} is not an IPv6 address")),
        Err(_) => check_hostname(host)?,
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> String {
        let ca = crate::pki::CertificateAuthority::generate("siem.corp.example", 30).unwrap();
        ca.cert_pem().to_owned()
    }

    #[test]
    fn host_and_port_forms() {
        assert_eq!(
            split_host_port("siem.corp.example").unwrap(),
            ("siem.corp.example".into(), 6514)
        );
        assert_eq!(split_host_port("SIEM:10514").unwrap(), ("siem".into(), 10514));
        assert_eq!(
            split_host_port("192.0.2.7:6514").unwrap(),
            ("192.0.2.7".into(), 6514)
        );
        assert_eq!(
            split_host_port("[2001:db8::7]:6514").unwrap(),
            ("2001:db8::7".into(), 6514)
        );
        assert_eq!(
            split_host_port("[2001:db8::7]").unwrap(),
            ("2001:db8::7".into(), 6514)
        );
        for bad in [
            "siem:0",
            "siem:x",
            "2001:db8::7",
            "[siem]:6514",
            "si\"em:1",
            "siem:1:2",
            "",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_server_needs_its_ca_and_a_ca_needs_its_server() {
        let pem = ca();
        assert!(RemoteSyslog::from_properties(None, None).unwrap().is_none());
        let err = RemoteSyslog::from_properties(Some("siem"), None).unwrap_err();
        assert!(err.to_string().contains("\"syslog-ca\""), "{err}");
        let err = RemoteSyslog::from_properties(None, Some(&pem)).unwrap_err();
        assert!(err.to_string().contains("without syslog-server"), "{err}");
        let err = RemoteSyslog::from_properties(Some("siem"), Some("not a pem")).unwrap_err();
        assert!(err.to_string().contains("\"syslog-ca\""), "{err}");
        let remote = RemoteSyslog::from_properties(Some("siem.corp.example:10514"), Some(&pem))
            .unwrap()
            .unwrap();
        let files = remote.files("/run/keyward-syslog");
        let conf = &files
            .iter()
            .find(|(n, _)| *n == "rsyslog-forward.conf")
            .unwrap()
            .1;
        // TLS required, the name checked, RFC 5424 framing and format.
        for needed in [
            "target=\"siem.corp.example\" port=\"10514\"",
            "StreamDriverMode=\"1\"",
            "StreamDriverAuthMode=\"x509/name\"",
            "StreamDriverPermittedPeers=\"siem.corp.example\"",
            "TCP_Framing=\"octet-counted\"",
            "RSYSLOG_SyslogProtocol23Format",
            "DefaultNetstreamDriverCAFile=\"/run/keyward-syslog/syslog-ca.pem\"",
        ] {
            assert!(conf.contains(needed), "{needed} missing from:\n{conf}");
        }
        assert_eq!(files.iter().find(|(n, _)| *n == "syslog-ca.pem").unwrap().1, pem);
    }
}
