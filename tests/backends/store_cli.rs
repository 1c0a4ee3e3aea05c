//! `keyward store status|verify|reindex|migrate` against a keyward server
//! whose store is a real OpenBao dev server.

use crate::common;
use crate::common::admin::kw;
use crate::store_openbao::{Bao, with_openbao_store};

#[test]
fn store_commands_over_openbao() {
    let bao = Bao::start();
    let token_file = bao.write_token_file("cli.token", &bao.token);
    let server = common::TestServer::start_with(|text| with_openbao_store(text, &bao, &token_file));
    let config = server.config();
    let config = config.to_str().unwrap();
    let rt = common::admin::runtime();
    let uids: Vec<String> = rt.block_on(async {
        let mut client = server.client().await;
        let mut uids = Vec::new();
        for _ in 0..3 {
            uids.push(common::load::create(&mut client).await);
        }
        client.close().await;
        uids
    });

    let (ok, out, err) = kw(&server, &["store", "status"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("openbao at http://127.0.0.1:"), "{out}");
    assert!(
        out.contains("compare-and-swap yes, server-side query no"),
        "{out}"
    );
    assert!(out.contains("records:      3"), "{out}");
    assert!(out.contains("index:") && out.contains("3 records"), "{out}");

    let (ok, out, err) = kw(&server, &["store", "verify"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("3 records checked: 3 bound under the HSM"), "{out}");

    // The store's operator raises one key's record version: verify names it.
    let path = format!("/v1/secret/data/serve/{}", uids[1]);
    let (status, secret) = bao.api("GET", &path, None);
    assert_eq!(status, 200, "{secret}");
    let mut data = secret["data"]["data"].clone();
    let kv_version = secret["data"]["metadata"]["version"].as_u64().unwrap();
    data["version"] = serde_json::json!(data["version"].as_u64().unwrap() + 1);
    let (status, answer) = bao.api(
        "POST",
        &path,
        Some(serde_json::json!({ "options": { "cas": kv_version }, "data": data })),
    );
    assert_eq!(status, 200, "{answer}");
    let (ok, out, err) = kw(&server, &["store", "verify"]);
    assert!(!ok, "verify must fail: {out}");
    assert!(out.contains("3 records checked: 2 bound under the HSM"), "{out}");
    assert!(
        err.contains(&uids[1]) && err.contains("changed outside keyward"),
        "{err}"
    );

    // Migration into an embedded store copies every record exactly; a second
    // run copies nothing; the copy verifies the same way.
    let sqlite_config = server.path("sqlite.toml");
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("[store]").unwrap();
    let end = text.find("[cluster]").unwrap();
    let end = end + text[end..].find("\n\n").map_or(text.len() - end, |i| i + 2);
    let mut sqlite_text = text.clone();
    sqlite_text.replace_range(
        start..end,
        "[store]\nkind = \"sqlite\"\npath = \"migrated.db\"\n\n",
    );
    std::fs::write(&sqlite_config, sqlite_text).unwrap();
    let to = sqlite_config.to_str().unwrap();
    let (ok, out, err) = kw(&server, &["store", "migrate", "--to", to]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("3 copied, 0 replaced"), "{out}");
    let (ok, out, err) = kw(&server, &["store", "migrate", "--to", to]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("0 copied, 0 replaced (older there), 3 already there"),
        "{out}"
    );
    let out = server.keyward(&["store", "verify", "--config", to]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("3 records checked: 2 bound"), "{shown}");

    // The index is rebuilt from the store on demand.
    let (ok, out, err) = kw(&server, &["store", "reindex"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("indexed 3 records"), "{out}");
}

#[test]
fn check_config_says_what_the_openbao_token_may_not_do() {
    let bao = Bao::start();
    let token_file = bao.write_token_file("cli.token", &bao.token);
    let server = common::TestServer::start_with(|text| with_openbao_store(text, &bao, &token_file));
    let (ok, out, err) = kw(&server, &["check-config"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("may read, create and update records"), "{out}");

    // A token that may only read: check-config names what is missing.
    let (status, answer) = bao.api(
        "PUT",
        "/v1/sys/policies/acl/reader",
        Some(serde_json::json!({ "policy":
            "path \"secret/data/serve/*\" { capabilities = [\"read\"] }\n\
             path \"secret/metadata/serve/*\" { capabilities = [\"read\", \"list\"] }" })),
    );
    assert!(status == 204 || status == 200, "{status} {answer}");
    let (status, answer) = bao.api(
        "POST",
        "/v1/auth/token/create",
        Some(serde_json::json!({ "policies": ["reader"], "no_default_policy": false })),
    );
    assert_eq!(status, 200, "{answer}");
    let reader = answer["auth"]["client_token"].as_str().unwrap().to_owned();
    bao.write_token_file("cli.token", &reader);
    let (ok, out, err) = kw(&server, &["check-config"]);
    assert!(!ok, "a read-only token must fail check-config: {out}");
    let shown = format!("{out}{err}");
    assert!(
        shown.contains("lacks create on secret/data/serve/*, update on secret/data/serve/*"),
        "{shown}"
    );
    assert!(
        !shown.contains(&reader) && !shown.contains(&bao.token),
        "no token in the output"
    );
}
