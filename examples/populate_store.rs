//! Fills a keyward store with AES-256 keys as fast as the key service allows,
//! so that `keyward root rotate` (and backup/restore) can be measured on a
//! realistic number of keys without a KMIP client:
//!
//! ```text
//! scripts/dev-env /tmp/kw
//! SOFTHSM2_CONF=/tmp/kw/softhsm/softhsm2.conf \
//!     cargo run --release --example populate_store -- /tmp/kw/keyward.toml 10000
//! SOFTHSM2_CONF=/tmp/kw/softhsm/softhsm2.conf \
//!     target/release/keyward root rotate --config /tmp/kw/keyward.toml
//! ```
//!
//! Keys go to the `default` group (that of the development client), sealed
//! under the HSM's newest root key, exactly as a KMIP Create stores them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use keyward::config::Config;
use keyward::keys::KeyService;
use keyward::kmip::attribute::Attribute;
use keyward::kmip::object::{KeyBlock, ManagedObject};
use keyward::kmip::{CryptographicAlgorithm, ObjectType};
use keyward::store::OpenMode;
use keyward::ttlv::Value;

const CONCURRENCY: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: populate_store CONFIG COUNT   (SOFTHSM2_CONF set for SoftHSM)");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let config = Config::load(&config).expect("configuration");
    let hsm = keyward::hsm::open_async(&config.hsm.settings().expect("PIN")).expect("HSM");
    let store = keyward::store::open(&config.store, OpenMode::CreateIfAbsent).expect("store");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let crk = hsm
            .crk_versions()
            .await
            .unwrap()
            .into_iter()
            .max()
            .expect("a root key");
        let keys = Arc::new(KeyService::new(hsm, store, crk));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..CONCURRENCY {
            let keys = Arc::clone(&keys);
            let share = count / CONCURRENCY + usize::from(worker < count % CONCURRENCY);
            tasks.spawn(async move {
                for _ in 0..share {
                    create_one(&keys).await;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "created {count} keys under {} in {secs:.1} s ({:.0} keys/s)",
            crk.label(),
            count as f64 / secs
        );
    });
}

async fn create_one(keys: &KeyService) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let material = keys.generate_material(32).await.unwrap();
    let object = ManagedObject::SymmetricKey {
        key_block: KeyBlock::raw(CryptographicAlgorithm::AES, material),
    }
    .to_item();
    let attributes = vec![
        Attribute::new(
            "Cryptographic Algorithm",
            Value::Enumeration(CryptographicAlgorithm::AES.0),
        ),
        Attribute::new("Cryptographic Length", Value::Integer(256)),
        Attribute::new("Cryptographic Usage Mask", Value::Integer(12)),
    ];
    keys.create("default", ObjectType::SYMMETRIC_KEY, &object, attributes, now)
        .await
        .unwrap();
}
