//! Locate through the key service: over the embedded store and over a remote
//! store's index, with the HSM work it costs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::testing::{create_key, service_over};
use crate::auth::Caller;
use crate::kmip::attribute::Attribute;
use crate::store::{IndexSettings, IndexedStore, MemoryStore, Store};
use crate::ttlv::Value;

fn x_name(name: &str) -> Attribute {
    Attribute::new("x-Name", Value::TextString(name.into()))
}

#[tokio::test]
async fn a_non_exact_locate_over_the_embedded_store_opens_no_seal() {
    let (keys, hsm) = service_over(Arc::new(MemoryStore::new()));
    for n in 0..40 {
        create_key(&keys, "g", vec![x_name(&format!("vm-{n}"))]).await;
    }
    let caller = Caller::for_tests("a", "g");
    hsm.unseals.store(0, Ordering::SeqCst);
    // Two instances of one name: a filter the store cannot say exactly.
    let filter = [x_name("vm-3"), x_name("vm-3")];
    let (found, total) = keys.locate(&caller, &filter, 0, 10, true, 200).await.unwrap();
    assert_eq!((found.len(), total), (1, Some(1)));
    assert_eq!(
        hsm.unseals.load(Ordering::SeqCst),
        0,
        "no seal opened: a Get of the answer checks it"
    );
}

#[tokio::test]
async fn over_a_remote_store_locate_answers_only_records_read_through_and_bound() {
    let remote = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let index = IndexedStore::open(
        Arc::clone(&remote) as Arc<dyn Store>,
        &IndexSettings::new(dir.path().join("index.db")),
    )
    .unwrap();
    let (keys, _hsm) = service_over(Arc::new(index));
    let kept = create_key(&keys, "g", vec![x_name("web")]).await;
    let deleted = create_key(&keys, "g", vec![x_name("web")]).await;
    let edited = create_key(&keys, "g", vec![x_name("web")]).await;
    let caller = Caller::for_tests("a", "g");
    let exact = [x_name("web")];
    let inexact = [x_name("web"), x_name("web")];
    for filter in [&exact[..], &inexact[..]] {
        let (found, _) = keys.locate(&caller, filter, 0, 10, false, 200).await.unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
    }
    // The customer deletes one record, the operator edits another; the
    // node's index still lists both.
    remote.delete(&deleted, None).await.unwrap();
    let mut record = remote.get(&edited).await.unwrap().unwrap();
    record.state = crate::kmip::State::ACTIVE.0;
    remote.update(&record, record.version).await.unwrap();
    for filter in [&exact[..], &inexact[..]] {
        let (found, _) = keys.locate(&caller, filter, 0, 10, false, 200).await.unwrap();
        assert_eq!(found, std::slice::from_ref(&kept), "only the intact record");
    }
}
