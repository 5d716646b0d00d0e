//! gzip for `_bulk` bodies: ISA-L's igzip when the system has it, flate2 (zlib-rs) otherwise.
//!
//! Why: gzip is the largest part of a shipped document's cost. On the sink's real bodies
//! (BENCHMARKS.md, "gzip with ISA-L"), igzip level 1 compresses about twice as fast as
//! zlib-rs level 1 and packs tighter (7.9x against 6.1x), because it builds a Huffman code
//! per block from the tokens it found instead of using the fixed code.
//!
//! How: `libisal.so.2` (Debian's `libisal2`) is opened at run time with `dlopen`, so building
//! Sluice needs no C library and a machine without it still ships, through zlib-rs. Only the
//! two calls below are used, and of `struct isal_zstream` only its public head, which has
//! kept its layout since the library's soname became 2; the stream is given far more room
//! than any released version's full struct needs.

use std::ffi::c_void;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;

use super::error::EsError;

/// Which library compresses request bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GzipLibrary {
    /// ISA-L for levels 1 and 2 when `libisal.so.2` can be loaded, zlib-rs otherwise.
    #[default]
    Auto,
    /// Always flate2 with zlib-rs.
    ZlibRs,
    /// ISA-L for levels 1 and 2; starting fails when the library cannot be loaded.
    Isal,
}

impl GzipLibrary {
    /// What actually compresses at `level` under this choice: `"isal"`, `"zlib-rs"`, or
    /// `"none"` for level 0.
    pub fn effective(self, level: u32) -> &'static str {
        if level == 0 {
            "none"
        } else if self.isal_for(level).is_some() {
            "isal"
        } else {
            "zlib-rs"
        }
    }

    /// ISA-L, when it compresses at `level` under this choice (at that same level). Its
    /// levels 1 and 2 are as fast as or faster than zlib's 1 and pack better; higher zlib
    /// levels pack better than anything ISA-L offers at a comparable cost, so they stay with
    /// zlib-rs. Never after ISA-L has failed once.
    fn isal_for(self, level: u32) -> Option<&'static Isal> {
        let wanted = matches!(self, GzipLibrary::Auto | GzipLibrary::Isal)
            && matches!(level, 1 | 2)
            && !ISAL_FAILED.load(Ordering::Relaxed);
        isal().filter(|_| wanted)
    }
}

/// Whether `libisal.so.2` could be loaded (looked up once per process).
pub fn isal_available() -> bool {
    isal().is_some()
}

/// gzip-compresses `input` into `out` (cleared first) at `level` (1..=9) with `library`.
pub fn gzip(
    input: &[u8],
    level: u32,
    library: GzipLibrary,
    out: &mut Vec<u8>,
) -> Result<(), EsError> {
    out.clear();
    if let Some(lib) = library.isal_for(level) {
        let done = STREAM.with(|s| {
            let mut s = s.borrow_mut();
            let stream = s.get_or_insert_with(IsalStream::new);
            stream.compress(lib, input, level, out)
        });
        match done {
            Ok(()) => return Ok(()),
            Err(e) => {
                // A library that refuses a stream it took before (a future version needing a
                // larger level buffer, say) must not stall shipping: this body and every later
                // one go through zlib-rs.
                if !ISAL_FAILED.swap(true, Ordering::Relaxed) {
                    eprintln!("sluice: ISA-L gzip failed ({e}); using zlib-rs from now on");
                }
                out.clear();
            }
        }
    }
    let mut enc = GzEncoder::new(std::mem::take(out), Compression::new(level));
    enc.write_all(input).map_err(|e| EsError::io("gzip", e))?;
    *out = enc.finish().map_err(|e| EsError::io("gzip", e))?;
    Ok(())
}

/// Set when ISA-L failed once: zlib-rs compresses from then on.
static ISAL_FAILED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// One ISA-L stream per thread that compresses (the sink's workers), made on first use.
    static STREAM: std::cell::RefCell<Option<IsalStream>> = const { std::cell::RefCell::new(None) };
}

type DeflateInit = unsafe extern "C" fn(*mut c_void);
type Deflate = unsafe extern "C" fn(*mut c_void) -> i32;

/// The two entry points of a loaded `libisal.so.2` (never unloaded).
struct Isal {
    init: DeflateInit,
    deflate: Deflate,
}

fn isal() -> Option<&'static Isal> {
    static LIB: OnceLock<Option<Isal>> = OnceLock::new();
    LIB.get_or_init(load_isal).as_ref()
}

fn load_isal() -> Option<Isal> {
    if std::env::var_os("SLUICE_NO_ISAL").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    // SAFETY: dlopen and dlsym get NUL-terminated names; the handle is never closed, so the
    // symbols stay valid for the process's life. The two symbols have these C signatures in
    // every libisal.so.2: `void isal_deflate_init(struct isal_zstream *)` and
    // `int isal_deflate(struct isal_zstream *)`.
    unsafe {
        let handle = libc::dlopen(c"libisal.so.2".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return None;
        }
        let init = libc::dlsym(handle, c"isal_deflate_init".as_ptr());
        let deflate = libc::dlsym(handle, c"isal_deflate".as_ptr());
        if init.is_null() || deflate.is_null() {
            return None;
        }
        Some(Isal {
            init: std::mem::transmute::<*mut c_void, DeflateInit>(init),
            deflate: std::mem::transmute::<*mut c_void, Deflate>(deflate),
        })
    }
}

/// Room for `struct isal_zstream`: 82,384 bytes in ISA-L 2.30 (its history buffer and hash
/// heads are inside); four times that leaves room for any growth of the private tail.
const STREAM_BYTES: usize = 320 << 10;
/// The level buffer (hash table and token buffer of levels 1-3): ISA-L 2.30's
/// `ISAL_DEF_LVL2_DEFAULT` is 331,776 bytes and `ISAL_DEF_LVL1_DEFAULT` 282,624; the larger
/// one serves both levels.
const LEVEL_BUF_BYTES: usize = 331_776;

// The public head of `struct isal_zstream` (igzip_lib.h), byte offsets on 64-bit targets.
const OFF_NEXT_IN: usize = 0;
const OFF_AVAIL_IN: usize = 8;
const OFF_NEXT_OUT: usize = 16;
const OFF_AVAIL_OUT: usize = 24;
const OFF_LEVEL: usize = 40;
const OFF_LEVEL_BUF_SIZE: usize = 44;
const OFF_LEVEL_BUF: usize = 48;
const OFF_END_OF_STREAM: usize = 56;
const OFF_FLUSH: usize = 58;
const OFF_GZIP_FLAG: usize = 60;
/// `IGZIP_GZIP`: a gzip header and trailer around the deflate stream.
const IGZIP_GZIP: u16 = 1;
/// `COMP_OK`.
const COMP_OK: i32 = 0;

/// Memory for one ISA-L compression stream and its level buffer, 64-byte aligned.
struct IsalStream {
    stream: Box<[Align64]>,
    level_buf: Box<[Align64]>,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Align64([u8; 64]);

impl IsalStream {
    fn new() -> Self {
        IsalStream {
            stream: vec![Align64([0; 64]); STREAM_BYTES / 64].into_boxed_slice(),
            level_buf: vec![Align64([0; 64]); LEVEL_BUF_BYTES.div_ceil(64)].into_boxed_slice(),
        }
    }

    /// Address of the public field at `offset` (in the first 64 bytes) of type `T`.
    fn field<T>(&mut self, offset: usize) -> *mut T {
        assert!(offset + std::mem::size_of::<T>() <= 64);
        // SAFETY: in bounds of the first 64-byte block (checked above).
        unsafe {
            self.stream
                .as_mut_ptr()
                .cast::<u8>()
                .add(offset)
                .cast::<T>()
        }
    }

    fn put<T: Copy>(&mut self, offset: usize, v: T) {
        // SAFETY: `field` points into the stream memory; unaligned write.
        unsafe { self.field::<T>(offset).write_unaligned(v) }
    }

    fn get<T: Copy>(&mut self, offset: usize) -> T {
        // SAFETY: as in `put`; unaligned read.
        unsafe { self.field::<T>(offset).read_unaligned() }
    }

    /// One whole gzip member of `input` at ISA-L `level`, appended to `out`.
    fn compress(
        &mut self,
        lib: &Isal,
        input: &[u8],
        level: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), EsError> {
        let too_big = || EsError::io("gzip", std::io::Error::other("body over 4 GiB"));
        let avail_in = u32::try_from(input.len()).map_err(|_| too_big())?;
        // SAFETY: the stream memory is larger than the library's struct and aligned for it;
        // `isal_deflate_init` initialises every field it needs.
        unsafe { (lib.init)(self.stream.as_mut_ptr().cast()) };
        let level_buf = self.level_buf.as_mut_ptr().cast::<u8>();
        self.put(OFF_LEVEL, level);
        self.put(OFF_LEVEL_BUF_SIZE, (self.level_buf.len() * 64) as u32);
        self.put(OFF_LEVEL_BUF, level_buf);
        self.put(OFF_GZIP_FLAG, IGZIP_GZIP);
        self.put(OFF_FLUSH, 0u16);
        self.put(OFF_END_OF_STREAM, 1u16);
        self.put(OFF_NEXT_IN, input.as_ptr());
        self.put(OFF_AVAIL_IN, avail_in);
        // Deflate grows incompressible input by 5 bytes per 64 KiB stored block; gzip adds
        // 18 bytes of header and trailer.
        out.reserve(input.len() + input.len() / 1024 + 1024);
        loop {
            let spare = out.spare_capacity_mut();
            let room = u32::try_from(spare.len()).unwrap_or(u32::MAX);
            self.put(OFF_NEXT_OUT, spare.as_mut_ptr().cast::<u8>());
            self.put(OFF_AVAIL_OUT, room);
            // SAFETY: input, output and level buffers are valid for the lengths given and
            // outlive the call; the stream was initialised above.
            let rc = unsafe { (lib.deflate)(self.stream.as_mut_ptr().cast()) };
            if rc != COMP_OK {
                return Err(EsError::io(
                    "gzip",
                    std::io::Error::other(format!("isal_deflate returned {rc}")),
                ));
            }
            let left: u32 = self.get(OFF_AVAIL_OUT);
            let written = (room - left) as usize;
            // SAFETY: the library wrote `written` bytes at the start of the spare capacity.
            unsafe { out.set_len(out.len() + written) };
            let in_left: u32 = self.get(OFF_AVAIL_IN);
            if left > 0 && in_left == 0 {
                // With end_of_stream set, a call that neither ran out of room nor left input
                // has written the whole member, trailer included.
                return Ok(());
            }
            if left > 0 {
                return Err(EsError::io(
                    "gzip",
                    std::io::Error::other("isal_deflate stopped with input left"),
                ));
            }
            out.reserve(out.capacity().max(1 << 16));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn body(n: u64) -> Vec<u8> {
        let mut s = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            writeln!(
                s,
                "{{\"create\":{{\"_id\":\"{x:032x}\"}}}}\n{{\"source\":{{\"ip\":\"10.{}.{}.{}\",\"port\":{}}},\"network\":{{\"bytes\":{}}}}}",
                i % 256,
                (x >> 8) % 256,
                (x >> 16) % 256,
                x % 65536,
                x % 1_000_000
            )
            .expect("write");
        }
        s
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut back)
            .expect("valid gzip");
        back
    }

    /// What the CI machine installs (`libisal2`); a developer box without it skips the ISA-L
    /// half unless SLUICE_REQUIRE_ISAL is set, as `.ci/run` does.
    fn isal_expected() -> bool {
        let want = std::env::var_os("SLUICE_REQUIRE_ISAL").is_some();
        assert!(
            !want || isal_available(),
            "SLUICE_REQUIRE_ISAL is set but libisal.so.2 cannot be loaded"
        );
        isal_available()
    }

    /// Inflates `gz` with an external program reading stdin; its stdout.
    fn inflate_with(program: &str, args: &[&str], gz: &[u8]) -> Vec<u8> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let mut stdin = child.stdin.take().expect("stdin");
        let input = gz.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().expect("runs");
        writer.join().expect("writer").expect("written");
        assert!(out.status.success(), "{program} refused the stream");
        out.stdout
    }

    #[test]
    fn bodies_inflate_with_independent_decoders() {
        let input = body(4_000);
        let mut gz = Vec::new();
        // Auto is ISA-L at levels 1 and 2 where libisal is installed (as in CI).
        for (library, level) in [
            (GzipLibrary::ZlibRs, 1),
            (GzipLibrary::ZlibRs, 6),
            (GzipLibrary::Auto, 1),
            (GzipLibrary::Auto, 2),
        ] {
            gzip(&input, level, library, &mut gz).expect("gzip");
            assert!(
                gz.len() < input.len() / 2,
                "{library:?} level {level} compresses"
            );
            assert!(inflate_with("gzip", &["-dc"], &gz) == input);
            let py = "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))";
            assert!(inflate_with("python3", &["-c", py], &gz) == input);
        }
    }

    #[test]
    fn every_library_and_level_round_trips() {
        let input = body(4_000);
        for library in [GzipLibrary::Auto, GzipLibrary::ZlibRs, GzipLibrary::Isal] {
            for level in 1..=9 {
                if library == GzipLibrary::Isal && !isal_available() {
                    continue;
                }
                let mut out = Vec::new();
                gzip(&input, level, library, &mut out).expect("gzip");
                assert!(
                    out.len() < input.len() / 2,
                    "{library:?} {level}: no compression"
                );
                assert!(gunzip(&out) == input, "{library:?} level {level} differs");
            }
        }
    }

    #[test]
    fn isal_is_used_at_levels_one_and_two_and_writes_its_own_stream() {
        if !isal_expected() {
            eprintln!("libisal.so.2 not found: ISA-L half skipped");
            return;
        }
        assert_eq!(GzipLibrary::Auto.effective(1), "isal");
        assert_eq!(GzipLibrary::Auto.effective(2), "isal");
        assert_eq!(GzipLibrary::Auto.effective(3), "zlib-rs");
        assert_eq!(GzipLibrary::ZlibRs.effective(1), "zlib-rs");
        assert_eq!(GzipLibrary::Auto.effective(0), "none");
        let input = body(20_000);
        let (mut a, mut z) = (Vec::new(), Vec::new());
        gzip(&input, 1, GzipLibrary::Isal, &mut a).expect("isal");
        gzip(&input, 1, GzipLibrary::ZlibRs, &mut z).expect("zlib-rs");
        // Two different encoders: the bytes differ, the contents do not.
        assert_ne!(a, z);
        assert!(gunzip(&a) == input);
    }

    #[test]
    fn isal_refusing_a_stream_is_an_error_not_a_crash() {
        if !isal_expected() {
            return;
        }
        let lib = isal().expect("loaded");
        // A level buffer below ISA-L's minimum: the library must say no.
        let mut s = IsalStream {
            stream: vec![Align64([0; 64]); STREAM_BYTES / 64].into_boxed_slice(),
            level_buf: vec![Align64([0; 64]); 1].into_boxed_slice(),
        };
        let mut out = Vec::new();
        let e = s.compress(lib, &body(100), 1, &mut out);
        assert!(e.is_err(), "a 64-byte level buffer was accepted");
    }

    #[test]
    fn isal_handles_empty_tiny_incompressible_and_reused_streams() {
        if !isal_expected() {
            return;
        }
        let mut x = 1u64;
        let noise: Vec<u8> = (0..3_000_000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        // One stream per thread, reused: each call must start a fresh member.
        let mut out = Vec::new();
        for input in [&b""[..], b"x", &noise, &body(100), &noise[..70_000], b""] {
            gzip(input, 1, GzipLibrary::Isal, &mut out).expect("isal");
            assert!(gunzip(&out) == input, "{} bytes", input.len());
        }
    }
}
