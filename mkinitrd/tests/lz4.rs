//! LZ4 output, segmented images and the file fast path, through the
//! library (no CLI): images are compared with the plain archive byte for
//! byte, decompressed with our reader and with the `lz4` tool, listed when
//! concatenated, and unpacked with GNU cpio.

use std::fs::{self, File};
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Command, Stdio};

use mkinitrd::cpio::{self, DATA_ALIGN, HEADER_LEN, PATH_MAX, S_IFREG};
use mkinitrd::image::Image;
use mkinitrd::list::{list_archive, read_image};
use mkinitrd::lz4::{self, BLOCK_SIZE, Lz4Options, decompress_legacy};
use mkinitrd::output::write_output;
use mkinitrd::write::Compression;

/// The workspace's one temporary-directory helper.
use tests::Scratch as TempDir;

/// `len` bytes that compress somewhat, different for each `seed`.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = state.to_le_bytes();
        // Half random bytes, half runs: LZ4 finds some matches.
        out.extend_from_slice(&word[..4]);
        out.extend_from_slice(&[word[4]; 12]);
    }
    out.truncate(len);
    out
}

fn threads(n: usize) -> Compression {
    Compression::Lz4(Lz4Options {
        threads: NonZeroUsize::new(n),
    })
}

/// An image of host files of many sizes (about 20 MB in all, so three
/// LZ4 blocks), small files in memory, directories and a symlink, but no
/// device node, so GNU cpio can unpack it without root.
fn big_image(tmp: &TempDir) -> (Image, Vec<(String, Vec<u8>)>) {
    let mut image = Image::new(1_700_000_000);
    let mut files = Vec::new();
    let sizes = [
        0,
        1,
        4095,
        4096,
        4097,
        10_000,
        65_536,
        123_457,
        1 << 20,
        3 << 20,
        BLOCK_SIZE,
        BLOCK_SIZE - 17,
    ];
    for (i, size) in sizes.into_iter().enumerate() {
        let data = content(size, i as u64 + 1);
        let name = format!("usr/lib/modules/{i:03}-file{size}.ko");
        let host = tmp.write(&format!("host/{i}"), &data);
        image.add_file(&name, &host, Some(0o644)).unwrap();
        files.push((name, data));
    }
    image
        .add_bytes("etc/hostname", b"vm\n".to_vec(), 0o644)
        .unwrap();
    let big_bytes = content(5000, 99);
    image
        .add_bytes("etc/big-in-memory", big_bytes.clone(), 0o600)
        .unwrap();
    files.push(("etc/big-in-memory".into(), big_bytes));
    files.push(("etc/hostname".into(), b"vm\n".to_vec()));
    image.add_symlink("bin/sh", "busybox").unwrap();
    image.add_dir("tmp", 0o1777).unwrap();
    (image, files)
}

/// The plain archive through the generic `Write` path.
fn plain_bytes(image: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut out).unwrap();
    out
}

/// Runs `lz4 -d -c` on `path`; the test fails when lz4 is missing.
fn lz4_cli_decompress(path: &Path) -> Vec<u8> {
    let output = Command::new("lz4")
        .args(["-d", "-c"])
        .arg(path)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run lz4 ({e}): apt-get install lz4"));
    assert!(
        output.status.success(),
        "lz4 -d failed: {:?}",
        output.status
    );
    output.stdout
}

#[test]
fn lz4_image_decompresses_to_the_plain_image() {
    let tmp = TempDir::new("roundtrip");
    let (image, _) = big_image(&tmp);
    let plain = plain_bytes(&image);
    assert!(plain.len() > 2 * BLOCK_SIZE, "{} bytes", plain.len());

    let path = tmp.path().join("image.cpio.lz4");
    write_output(&path, |file| image.write_to_file(file, &threads(2))).unwrap();
    let compressed = fs::read(&path).unwrap();
    assert_eq!(compressed[..4], lz4::LZ4_LEGACY_MAGIC_BYTES);
    assert!(compressed.len() < plain.len());

    assert!(
        decompress_legacy(&compressed).unwrap() == plain,
        "our reader"
    );
    assert!(lz4_cli_decompress(&path) == plain, "lz4 -d");
}

#[test]
fn lz4_output_does_not_depend_on_the_thread_count() {
    let tmp = TempDir::new("threads");
    let (image, _) = big_image(&tmp);
    let compress = |compression: Compression| {
        let mut out = Vec::new();
        image.write_compressed_to(&mut out, &compression).unwrap();
        out
    };
    let one = compress(threads(1));
    for n in [2, 4] {
        assert!(compress(threads(n)) == one, "{n} threads differ from 1");
    }
    assert!(compress(Compression::Lz4(Lz4Options::default())) == one);
}

#[test]
fn lz4_cli_output_is_read_back() {
    let tmp = TempDir::new("cli-compressed");
    let (image, files) = big_image(&tmp);
    let plain_path = tmp.path().join("image.cpio");
    fs::write(&plain_path, plain_bytes(&image)).unwrap();
    let lz4_path = tmp.path().join("image.cpio.lz4");
    let status = Command::new("lz4")
        .args(["-l", "-q", "-f"])
        .arg(&plain_path)
        .arg(&lz4_path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run lz4 ({e}): apt-get install lz4"));
    assert!(status.success());
    let compressed = fs::read(&lz4_path).unwrap();
    assert!(decompress_legacy(&compressed).unwrap() == fs::read(&plain_path).unwrap());
    let names: Vec<String> = read_image(&compressed)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for (name, _) in &files {
        assert!(names.contains(name), "{name} missing");
    }
}

/// The listing of `bytes`, as `mkinitrd --list` prints it.
fn listing(bytes: &[u8]) -> Result<String, String> {
    let mut out = Vec::new();
    match list_archive(bytes, Path::new("image"), &mut out) {
        Ok(()) => Ok(String::from_utf8(out).unwrap()),
        Err(e) => Err(e.to_string()),
    }
}

/// A small image holding one file `name`.
fn one_file(name: &str) -> Image {
    let mut image = Image::new(0);
    image
        .add_bytes(name, name.as_bytes().to_vec(), 0o644)
        .unwrap();
    image
}

fn lz4_of(image: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_compressed_to(&mut out, &threads(1)).unwrap();
    out
}

#[test]
fn concatenated_images_are_listed_like_the_kernel_reads_them() {
    let early = plain_bytes(&one_file("early"));
    let second = plain_bytes(&one_file("second"));
    let main = lz4_of(&one_file("main"));
    let more = lz4_of(&one_file("more"));
    let line = |name: &str| format!("-rw-r--r-- {:>9} 1970-01-01 00:00 {name}\n", name.len());
    let expect = |names: &[&str]| names.iter().map(|n| line(n)).collect::<String>();

    // An early plain archive, then the LZ4 main one (the usual layout).
    let image = [early.clone(), main.clone()].concat();
    assert_eq!(listing(&image).unwrap(), expect(&["early", "main"]));

    // Several plain archives with zero padding between them (grub pads).
    let image = [early.clone(), vec![0; 4096], second.clone(), main.clone()].concat();
    assert_eq!(
        listing(&image).unwrap(),
        expect(&["early", "second", "main"])
    );

    // Two lz4 -l outputs back to back: the repeated magic continues.
    let image = [main.clone(), more.clone()].concat();
    assert_eq!(listing(&image).unwrap(), expect(&["main", "more"]));

    // LZ4, an end mark and padding to 4, then plain (Linux 5.12 and later).
    let mut image = main.clone();
    image.resize(main.len().next_multiple_of(4) + 4, 0);
    image.extend_from_slice(&second);
    assert_eq!(listing(&image).unwrap(), expect(&["main", "second"]));

    // Trailing zero padding after LZ4 data, even less than a size field.
    for pad in [1, 3, 4, 100] {
        let image = [main.clone(), vec![0; pad]].concat();
        assert_eq!(listing(&image).unwrap(), expect(&["main"]), "{pad} zeros");
    }

    // The plain image with data alignment reads the same through --list.
    let tmp = TempDir::new("list-big");
    let (big, _) = big_image(&tmp);
    let plain = plain_bytes(&big);
    assert_eq!(listing(&lz4_of(&big)).unwrap(), listing(&plain).unwrap());
}

#[test]
fn broken_concatenations_are_refused_with_a_reason() {
    let early = plain_bytes(&one_file("early"));
    let main = lz4_of(&one_file("main"));

    // Plain data glued to LZ4 data: the kernel reads "0707" as a size.
    let image = [main.clone(), early.clone()].concat();
    let err = listing(&image).unwrap_err();
    assert_eq!(
        err,
        format!(
            "cannot decompress the LZ4 data at byte {}: block size 925906736 is over \
             LZ4_compressBound(8 MiB) = 8421520 (a cpio archive follows the LZ4 data: \
             put plain archives first, or end the LZ4 data with 4 zero bytes)",
            main.len()
        )
    );

    // LZ4 data cut short.
    let err = listing(&main[..main.len() - 2]).unwrap_err();
    assert_eq!(
        err,
        "cannot decompress the LZ4 data at byte 8: the input ends inside a block"
    );

    // A plain archive that does not start at a multiple of 4.
    let image = [early.clone(), vec![0; 2], early.clone()].concat();
    let err = listing(&image).unwrap_err();
    assert!(
        err.ends_with("does not start at a multiple of 4 bytes"),
        "{err}"
    );

    // Junk after a plain archive.
    let image = [early.clone(), b"\x1f\x8b\x08\x00\x00\x00".to_vec()].concat();
    let err = listing(&image).unwrap_err();
    assert!(
        err.ends_with("(this is gzip data; decompress it first)"),
        "{err}"
    );

    // An LZ4 segment whose content is not a complete archive.
    let truncated = plain_bytes(&one_file("cut"));
    let compressed = lz4::compress_legacy(&truncated[..200], &Lz4Options::default());
    let err = listing(&[early.clone(), compressed].concat()).unwrap_err();
    assert_eq!(
        err,
        format!(
            "cannot read the archive in the LZ4 data at byte {}, at byte 200 of its \
             decompressed content: the input ends inside a header",
            early.len()
        )
    );

    // Nothing but zeros.
    assert_eq!(
        listing(&[0; 64]).unwrap_err(),
        "cannot read the archive at byte 64: the input holds no cpio archive"
    );
}

#[test]
fn hostile_images_never_panic() {
    let early = plain_bytes(&one_file("early"));
    let original = [early, lz4_of(&one_file("main"))].concat();
    let mut mutator = ::tests::Mutator::default();
    for _ in 0..3000 {
        let bytes = mutator.damage(&original, 6);
        let chunk = mutator.up_to(100);
        let mut reader = mkinitrd::list::ImageReader::new();
        let fed = bytes
            .chunks(chunk)
            .try_for_each(|c| reader.feed(c, &mut |_| {}));
        if fed.is_ok() {
            let _ = reader.finish(&mut |_| {});
        }
        let _ = decompress_legacy(&bytes);
    }
}

#[test]
fn big_files_have_their_data_aligned_to_4_kib() {
    let tmp = TempDir::new("align");
    let (image, files) = big_image(&tmp);
    let plain = plain_bytes(&image);
    let entries = cpio::read_archive(&plain).unwrap();
    let mut aligned = 0;
    for entry in entries.iter().filter(|e| e.file_type() == S_IFREG) {
        let data_at = usize::try_from(entry.data_offset).unwrap();
        let size = entry.size as usize;
        let expected = &files.iter().find(|(n, _)| *n == entry.name).unwrap().1;
        assert!(
            &plain[data_at..data_at + size] == expected.as_slice(),
            "{}",
            entry.name
        );
        if u64::from(entry.size) < DATA_ALIGN {
            // Small files are not padded: the name has just its NUL.
            assert!(entry.data_offset - entry.offset <= (HEADER_LEN + entry.name.len() + 4) as u64);
        } else if entry.data_offset % DATA_ALIGN == 0 {
            aligned += 1;
        } else {
            // Only when the padding would pass PATH_MAX.
            let plain_end = entry.offset + HEADER_LEN as u64 + entry.name.len() as u64 + 1;
            let pad = plain_end.next_multiple_of(DATA_ALIGN) - plain_end;
            assert!(
                entry.name.len() as u64 + 1 + pad > u64::from(PATH_MAX),
                "{}",
                entry.name
            );
        }
    }
    assert!(aligned >= 8, "{aligned} aligned files");
}

/// Runs GNU cpio with `args` in `dir` on `archive`; returns stdout.
fn gnu_cpio(dir: &Path, args: &[&str], archive: &Path) -> String {
    let output = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(File::open(archive).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cpio ({e}): apt-get install cpio"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cpio {args:?}: {stderr}");
    // GNU cpio prints only the block count; a warning means it misread.
    assert!(stderr.trim().ends_with("blocks"), "cpio {args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn gnu_cpio_reads_the_padded_names() {
    let tmp = TempDir::new("gnu-cpio");
    let (image, files) = big_image(&tmp);
    let archive = tmp.path().join("image.cpio");
    write_output(&archive, |file| {
        image.write_to_file(file, &Compression::None)
    })
    .unwrap();

    let listed = gnu_cpio(tmp.path(), &["-t"], &archive);
    let names: Vec<&str> = image.entries().map(|(path, _)| path).collect();
    assert_eq!(listed.lines().collect::<Vec<_>>(), names);

    let out = tmp.path().join("unpacked");
    fs::create_dir(&out).unwrap();
    gnu_cpio(&out, &["-i", "-d", "--no-absolute-filenames"], &archive);
    for (name, data) in &files {
        assert!(fs::read(out.join(name)).unwrap() == *data, "{name}");
    }
    assert_eq!(
        fs::read_link(out.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
}

#[test]
fn file_fast_path_writes_the_same_bytes() {
    let tmp = TempDir::new("fast-path");
    let (image, _) = big_image(&tmp);
    let plain = plain_bytes(&image);
    let path = tmp.path().join("image.cpio");
    write_output(&path, |file| image.write_to_file(file, &Compression::None)).unwrap();
    assert!(fs::read(&path).unwrap() == plain);

    // Appended after another archive, offsets count from the file start:
    // the data stays aligned in the file and the image reads as two.
    let early = plain_bytes(&one_file("early"));
    let mut file = File::create(tmp.path().join("appended")).unwrap();
    file.write_all(&early).unwrap();
    image.write_to_file(&file, &Compression::None).unwrap();
    let appended = fs::read(tmp.path().join("appended")).unwrap();
    let entries = read_image(&appended).unwrap();
    assert_eq!(entries[0].name, "early");
    let big = entries
        .iter()
        .find(|e| e.size as usize == BLOCK_SIZE)
        .unwrap();
    assert_eq!(big.data_offset % DATA_ALIGN, 0);
    assert_eq!(entries.len(), 1 + cpio::read_archive(&plain).unwrap().len());
}

#[test]
fn a_host_file_that_shrank_is_named() {
    let tmp = TempDir::new("shrank");
    let host = tmp.write("module.ko", &content(100_000, 5));
    let mut image = Image::new(0);
    image.add_file("m.ko", &host, None).unwrap();
    fs::write(&host, b"short").unwrap();
    let path = tmp.path().join("image.cpio");
    for compression in [Compression::None, threads(2)] {
        let err = write_output(&path, |file| image.write_to_file(file, &compression)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot pack {}: it got shorter while packing (it had 100000 bytes)",
                host.display()
            )
        );
        assert!(!path.exists());
    }
}
