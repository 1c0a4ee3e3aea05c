//! The OVA that `image/build` packs (through `image/ova`): made from a small
//! streamOptimized VMDK and read back by `image/check-ova`, the importer's
//! checks (descriptor first, manifest, sizes, capacity, hardware, vApp
//! properties). And the checker can fail: a descriptor changed after packing
//! is caught by the manifest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn small_vmdk(dir: &Path) -> PathBuf {
    let raw = dir.join("disk.raw");
    let vmdk = dir.join("disk.vmdk");
    let (ok, text) = run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "raw"])
        .arg(&raw)
        .arg("16M"));
    assert!(ok, "qemu-img create: {text}");
    let (ok, text) = run(Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
        ])
        .arg(&raw)
        .arg(&vmdk));
    assert!(ok, "qemu-img convert: {text}");
    vmdk
}

#[test]
fn the_ova_checks_and_a_changed_descriptor_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let vmdk = small_vmdk(dir.path());
    let state = dir.path().join("state.vmdk");
    std::fs::copy(&vmdk, &state).unwrap();
    let ova = dir.path().join("keyward.ova");
    let (ok, text) = run(Command::new(repo().join("image/ova"))
        .arg(&vmdk)
        .arg(&state)
        .arg(&ova)
        .args(["--version", "9.8.7"]));
    assert!(ok, "image/ova: {text}");
    let (ok, text) = run(Command::new("python3")
        .arg(repo().join("image/check-ova"))
        .arg(&ova));
    assert!(ok && text.contains(": OK"), "image/check-ova: {text}");

    // Unpacked, the descriptor edited (another version), packed again in order.
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let (ok, text) = run(Command::new("tar").arg("-xf").arg(&ova).arg("-C").arg(&unpacked));
    assert!(ok, "{text}");
    let descriptor = unpacked.join("keyward.ovf");
    let xml = std::fs::read_to_string(&descriptor).unwrap();
    assert!(
        xml.contains("<Version>9.8.7</Version>"),
        "the version given is in the descriptor"
    );
    std::fs::write(&descriptor, xml.replace("9.8.7", "9.8.8")).unwrap();
    // Packed again in order, then checked.
    let repack_and_check = |name: &str, files: &[&str]| {
        let ova = dir.path().join(name);
        let (ok, text) = run(Command::new("tar")
            .arg("-cf")
            .arg(&ova)
            .arg("-C")
            .arg(&unpacked)
            .args(files));
        assert!(ok, "{text}");
        run(Command::new("python3")
            .arg(repo().join("image/check-ova"))
            .arg(&ova))
    };
    let (ok, text) = repack_and_check(
        "edited.ova",
        &[
            "keyward.ovf",
            "keyward.mf",
            "keyward-system.vmdk",
            "keyward-state.vmdk",
        ],
    );
    assert!(
        !ok && text.contains("keyward.ovf: SHA-256 does not match the manifest"),
        "{text}"
    );

    // Without the state disk: the appliance would have no /var.
    std::fs::write(&descriptor, xml).unwrap();
    let (ok, text) = repack_and_check(
        "without-state.ova",
        &["keyward.ovf", "keyward.mf", "keyward-system.vmdk"],
    );
    assert!(
        !ok && text.contains("referenced file keyward-state.vmdk is not in the package"),
        "{text}"
    );
}
