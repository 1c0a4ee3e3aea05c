//! `keyward appliance ovf-env`: the properties read, checked and rendered.

use super::*;

fn env(properties: &[(&str, &str)]) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" oe:id="">
  <PlatformSection><Kind>VMware ESXi</Kind></PlatformSection>
  <PropertySection>
"#,
    );
    for (k, v) in properties {
        let _ = writeln!(xml, r#"    <Property oe:key="{k}" oe:value="{v}"/>"#);
    }
    xml.push_str("  </PropertySection>\n</Environment>\n");
    xml
}

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk8KcKxqYxmV3o1B0C6mvnhbX9kq2qg6sS0yZfH4Q1p admin@example";

#[test]
fn static_addressing_renders_the_network_time_and_access_files() {
    let s = Settings::from_env(&env(&[
        ("hostname", "KMS01.corp.example"),
        ("ip-mode", "static"),
        ("ipv4-address", "192.0.2.10/24"),
        ("ipv4-gateway", "192.0.2.1"),
        ("ipv6-address", "2001:db8::10/64"),
        ("dns-servers", "192.0.2.53, 2001:db8::53"),
        ("ntp-servers", "ntp1.corp.example,192.0.2.123"),
        ("admin-ssh-key", ED25519),
        ("kmip-port", "5696"),
    ]))
    .unwrap();
    let files = s.files();
    let file = |n: &str| files.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
    assert_eq!(file("hostname"), Some("kms01.corp.example\n"));
    let network = file("10-keyward-ovf.network").unwrap();
    for line in [
        "Address=192.0.2.10/24",
        "Gateway=192.0.2.1",
        "Address=2001:db8::10/64",
        "DNS=192.0.2.53",
        "DNS=2001:db8::53",
    ] {
        assert!(network.lines().any(|l| l == line), "{line} in {network}");
    }
    assert!(!network.contains("DHCP"));
    assert_eq!(
        file("timesyncd.conf"),
        Some("[Time]\nNTP=ntp1.corp.example 192.0.2.123\n")
    );
    assert_eq!(file("authorized_keys"), Some(format!("{ED25519}\n").as_str()));
    assert_eq!(file("kmip-port"), Some("5696\n"));
    assert!(file("vcenter.pem").is_none());
}

#[test]
fn no_properties_mean_dhcp_and_defaults() {
    let s = Settings::from_env(&env(&[("ip-mode", "dhcp"), ("hostname", "")])).unwrap();
    let files = s.files();
    assert!(
        files
            .iter()
            .any(|(k, v)| *k == "10-keyward-ovf.network" && v.contains("DHCP=ipv4"))
    );
    assert!(files.iter().any(|(k, v)| *k == "hostname" && v == "keyward\n"));
    assert!(
        !files
            .iter()
            .any(|(k, _)| *k == "authorized_keys" || *k == "timesyncd.conf")
    );
}

#[test]
fn a_bad_property_is_named_with_why() {
    let refused = |props: &[(&str, &str)]| Settings::from_env(&env(props)).unwrap_err().to_string();
    let cases: [(&[(&str, &str)], &str); 13] = [
        (&[("hostname", "kms_01")], "\"hostname\""),
        (&[("ip-mode", "manual")], "\"ip-mode\""),
        (&[("ip-mode", "static")], "static addressing needs an address"),
        (
            &[("ip-mode", "static"), ("ipv4-address", "192.0.2.10")],
            "prefix length",
        ),
        (
            &[("ip-mode", "static"), ("ipv4-address", "192.0.2.300/24")],
            "\"ipv4-address\"",
        ),
        (
            &[
                ("ip-mode", "static"),
                ("ipv4-address", "192.0.2.10/24"),
                ("ipv4-gateway", "gw"),
            ],
            "\"ipv4-gateway\"",
        ),
        (&[("ipv4-address", "192.0.2.10/24")], "ip-mode is dhcp"),
        (&[("dns-servers", "192.0.2.53,dns.example")], "\"dns-servers\""),
        (
            &[("admin-ssh-key", "ssh-dss AAAAB3NzaC1kc3M=")],
            "\"admin-ssh-key\"",
        ),
        (
            &[("admin-ssh-key", "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB")],
            "does not match its type",
        ),
        (&[("kmip-port", "0")], "\"kmip-port\""),
        (&[("kmip-port", "443")], "no privilege to listen below 1024"),
        (
            &[(
                "trust-vcenter-cert",
                "-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----",
            )],
            "\"trust-vcenter-cert\"",
        ),
    ];
    for (props, needle) in cases {
        let err = refused(props);
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
    assert!(refused(&[("root-password", "x")]).contains("not a property of this appliance"));
    assert!(refused(&[("hostname", "a"), ("hostname", "b")]).contains("given twice"));
    assert!(
        Settings::from_env("<Other/>")
            .unwrap_err()
            .to_string()
            .contains("not an OVF")
    );
    assert!(Settings::from_env("<Environment><Property").is_err());
}

#[test]
fn a_vcenter_certificate_reads_with_escaped_or_real_line_breaks() {
    let ca = crate::pki::CertificateAuthority::generate("vcenter.corp.example", 30).unwrap();
    let pem = ca.cert_pem().trim_end().to_owned();
    for written in [pem.replace('\n', "\\n"), pem.replace('\n', "&#10;")] {
        let s = Settings::from_env(&env(&[("trust-vcenter-cert", written.as_str())])).unwrap();
        let files = s.files();
        let got = files
            .iter()
            .find(|(k, _)| *k == "vcenter.pem")
            .map(|(_, v)| v.as_str());
        assert_eq!(got, Some(format!("{pem}\n").as_str()));
    }
}

#[test]
fn the_folder_appears_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ovf");
    let s = Settings::from_env(&env(&[("hostname", "kms")])).unwrap();
    write_folder(&out, &s.files()).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("hostname")).unwrap(), "kms\n");
    assert!(!dir.path().join("ovf.partial").exists());
    // Never over an existing folder.
    assert!(write_folder(&out, &s.files()).is_err());
}

#[test]
fn custodians_choose_a_root_key_made_with_shares() {
    let files = |props: &[(&str, &str)]| Settings::from_env(&env(props)).map(|s| s.files());
    let with = files(&[("custodians", "3"), ("custodian-threshold", "2")]).unwrap();
    assert!(with.iter().any(|(k, v)| *k == "custodians" && v == "3 2\n"));
    let default_threshold = files(&[("custodians", "5")]).unwrap();
    assert!(
        default_threshold
            .iter()
            .any(|(k, v)| *k == "custodians" && v == "5 2\n")
    );
    for props in [&[("custodians", "0")][..], &[]] {
        assert!(!files(props).unwrap().iter().any(|(k, _)| *k == "custodians"));
    }
    for (props, named) in [
        (
            &[("custodians", "3"), ("custodian-threshold", "4")][..],
            "\"custodians\"",
        ),
        (&[("custodians", "1")][..], "\"custodians\""),
        (&[("custodians", "17")][..], "\"custodians\""),
        (&[("custodians", "three")][..], "\"custodians\""),
        (&[("custodian-threshold", "2")][..], "\"custodian-threshold\""),
        (
            &[("custodians", "3"), ("custodian-threshold", "1")][..],
            "\"custodians\"",
        ),
    ] {
        let err = files(props).unwrap_err().to_string();
        assert!(err.contains(named), "{props:?}: {err}");
    }
}
