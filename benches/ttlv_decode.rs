//! TTLV decode and encode throughput on messages shaped like vCenter's traffic.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyward::secret::SecretBytes;
use keyward::ttlv::{Item, Tag, Value, decode, encode_to_vec};
use std::hint::black_box;

fn text(tag: u32, s: &str) -> Item {
    Item::new(Tag(tag), Value::TextString(s.to_owned()))
}

/// A request like vCenter's batch of three Add Attribute items.
fn add_attribute_batch() -> Item {
    let header = Item::structure(
        Tag(0x420077),
        vec![
            Item::structure(
                Tag(0x420069),
                vec![
                    Item::new(Tag(0x42006A), Value::Integer(1)),
                    Item::new(Tag(0x42006B), Value::Integer(1)),
                ],
            ),
            Item::new(Tag(0x42000D), Value::Integer(3)),
        ],
    );
    let mut items = vec![header];
    for (i, (name, value)) in [
        ("x-Vendor", "VMware, Inc."),
        ("x-Product", "VMware vSphere"),
        ("x-Name", "vm-42 web front end"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut id = b"QLKC".to_vec();
        id.extend_from_slice(&(i as u32).to_le_bytes());
        items.push(Item::structure(
            Tag(0x42000F),
            vec![
                Item::new(Tag(0x42005C), Value::Enumeration(0x0D)),
                Item::new(Tag(0x420093), Value::ByteString(SecretBytes::new(id))),
                Item::structure(
                    Tag(0x420079),
                    vec![
                        text(0x420094, "4b0d5c2e-7a43-4f0c-9b53-4e2a7f3f1a11"),
                        Item::structure(Tag(0x420008), vec![text(0x42000A, name), text(0x42000B, value)]),
                    ],
                ),
            ],
        ));
    }
    Item::structure(Tag(0x420078), items)
}

/// A Get response carrying a 32-byte AES key.
fn get_response() -> Item {
    let key_block = Item::structure(
        Tag(0x420040),
        vec![
            Item::new(Tag(0x420042), Value::Enumeration(1)),
            Item::structure(
                Tag(0x420045),
                vec![Item::new(
                    Tag(0x420043),
                    Value::ByteString(SecretBytes::new(vec![7; 32])),
                )],
            ),
            Item::new(Tag(0x420028), Value::Enumeration(3)),
            Item::new(Tag(0x42002A), Value::Integer(256)),
        ],
    );
    Item::structure(
        Tag(0x42007B),
        vec![
            Item::structure(
                Tag(0x42007A),
                vec![
                    Item::structure(
                        Tag(0x420069),
                        vec![
                            Item::new(Tag(0x42006A), Value::Integer(1)),
                            Item::new(Tag(0x42006B), Value::Integer(1)),
                        ],
                    ),
                    Item::new(Tag(0x420092), Value::DateTime(1_700_000_000)),
                    Item::new(Tag(0x42000D), Value::Integer(1)),
                ],
            ),
            Item::structure(
                Tag(0x42000F),
                vec![
                    Item::new(Tag(0x42005C), Value::Enumeration(0x0A)),
                    Item::new(Tag(0x42007F), Value::Enumeration(0)),
                    Item::structure(
                        Tag(0x42007C),
                        vec![
                            Item::new(Tag(0x420057), Value::Enumeration(2)),
                            text(0x420094, "4b0d5c2e-7a43-4f0c-9b53-4e2a7f3f1a11"),
                            Item::structure(Tag(0x42008F), vec![key_block]),
                        ],
                    ),
                ],
            ),
        ],
    )
}

fn bench(c: &mut Criterion) {
    for (name, msg) in [
        ("add_attribute_batch", add_attribute_batch()),
        ("get_response", get_response()),
    ] {
        let bytes = encode_to_vec(&msg);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("decode", |b| b.iter(|| decode(black_box(&bytes))));
        g.bench_function("encode", |b| b.iter(|| encode_to_vec(black_box(&msg))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
