//! Issue 10, attack 3: Locate without bounds. With a few thousand keys a
//! Locate with no Maximum Items used to answer every identifier, and a batch of
//! Locates multiplied that. Locate now answers at most
//! `limits::DEFAULT_LOCATE_ITEMS` when no maximum is asked, at most
//! `limits::MAX_LOCATE_ITEMS` whatever is asked, and a batch of Locates stays
//! within the response budget (the rest fail with Response Too Large).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Instant;

use common::TestServer;
use common::admin::runtime;
use common::kmip_client::Client;
use common::vcenter::create_payload;
use keyward::kmip::message::{
    ProtocolVersion, RequestBatchItem, RequestHeader, RequestMessage, ResponseBatchItem,
};
use keyward::kmip::{BatchErrorContinuationOption, ObjectType, Operation, ResultReason, ResultStatus, tags};
use keyward::limits;
use keyward::ttlv::{Item, Value};

const KEYS: usize = 3 * 1024;

fn locate_payload(maximum_items: Option<i32>) -> Item {
    let mut items = vec![Item::structure(
        tags::ATTRIBUTE,
        vec![
            Item::new(tags::ATTRIBUTE_NAME, Value::TextString("Object Type".into())),
            Item::new(
                tags::ATTRIBUTE_VALUE,
                Value::Enumeration(ObjectType::SYMMETRIC_KEY.0),
            ),
        ],
    )];
    if let Some(m) = maximum_items {
        items.insert(0, Item::new(tags::MAXIMUM_ITEMS, Value::Integer(m)));
    }
    Item::structure(tags::REQUEST_PAYLOAD, items)
}

fn ids(item: &ResponseBatchItem) -> usize {
    assert_eq!(
        item.result_status,
        ResultStatus::SUCCESS,
        "{:?}",
        item.result_message
    );
    item.payload
        .as_ref()
        .unwrap()
        .children_with(tags::UNIQUE_IDENTIFIER)
        .count()
}

async fn send(client: &mut Client, items: Vec<(Operation, Item)>) -> (usize, Vec<ResponseBatchItem>) {
    let mut header = RequestHeader::new(ProtocolVersion::V1_4, items.len() as i32);
    header.batch_error_continuation_option = Some(BatchErrorContinuationOption::CONTINUE);
    let request = RequestMessage {
        header,
        batch_items: items
            .into_iter()
            .map(|(op, p)| RequestBatchItem::new(op, p))
            .collect(),
        unknown: Vec::new(),
    };
    let bytes = keyward::ttlv::encode_to_vec(&request.to_item());
    let response = client.round_trip_bytes(&bytes).await.unwrap();
    let tree = keyward::ttlv::decode_with(
        &response,
        &keyward::ttlv::DecodeLimits {
            max_message_bytes: limits::MAX_MESSAGE_BYTES_CEILING,
            ..Default::default()
        },
    )
    .unwrap();
    let message = keyward::kmip::message::ResponseMessage::from_item(&tree).unwrap();
    (response.len(), message.batch_items)
}

#[test]
fn locate_is_bounded_by_default_by_maximum_and_by_the_response_budget() {
    let server = TestServer::start();
    let rt = runtime();
    let tls = server.client_tls();
    rt.block_on(async {
        let mut client = Client::connect(server.addr, &tls).await.unwrap();
        // Batches of 256 Creates: a few thousand keys in seconds.
        let started = Instant::now();
        for _ in 0..KEYS / 256 {
            let (_, answers) = send(
                &mut client,
                (0..256).map(|_| (Operation::CREATE, create_payload())).collect(),
            )
            .await;
            assert!(answers.iter().all(|a| a.result_status == ResultStatus::SUCCESS));
        }
        eprintln!("{KEYS} keys created in {:?}", started.elapsed());

        let started = Instant::now();
        let (len, answers) = send(&mut client, vec![(Operation::LOCATE, locate_payload(None))]).await;
        let found = ids(&answers[0]);
        eprintln!(
            "Locate without Maximum Items: {found} ids, {len} bytes, {:?}",
            started.elapsed()
        );
        assert_eq!(found, limits::DEFAULT_LOCATE_ITEMS.min(KEYS));

        let (_, answers) = send(
            &mut client,
            vec![(Operation::LOCATE, locate_payload(Some(i32::MAX)))],
        )
        .await;
        let found = ids(&answers[0]);
        eprintln!("Locate with Maximum Items i32::MAX: {found} ids");
        assert_eq!(found, limits::MAX_LOCATE_ITEMS.min(KEYS));

        let (_, answers) = send(&mut client, vec![(Operation::LOCATE, locate_payload(Some(10)))]).await;
        assert_eq!(ids(&answers[0]), 10);

        let started = Instant::now();
        let (len, answers) = send(
            &mut client,
            (0..32)
                .map(|_| (Operation::LOCATE, locate_payload(None)))
                .collect(),
        )
        .await;
        let answered = answers
            .iter()
            .filter(|a| a.result_status == ResultStatus::SUCCESS)
            .count();
        let too_large = answers
            .iter()
            .filter(|a| a.result_reason == Some(ResultReason::RESPONSE_TOO_LARGE))
            .count();
        eprintln!(
            "32 Locates in one batch: {len} bytes, {answered} answered, {too_large} Response Too Large, {:?}",
            started.elapsed()
        );
        assert!(len <= limits::MAX_MESSAGE_BYTES, "{len} bytes");
        assert_eq!(answered + too_large, 32);
        assert!(too_large > 0);

        // Another client is still served.
        let mut other = Client::connect(server.addr, &tls).await.unwrap();
        let (_, answers) = send(&mut other, vec![(Operation::CREATE, create_payload())]).await;
        assert_eq!(answers[0].result_status, ResultStatus::SUCCESS);
    });
}
