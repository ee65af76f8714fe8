//! The persistent cache of measured kernel times.
//!
//! One JSON file (`measurements.json` under the user's cache directory, see
//! [`default_path`]) maps a key — the device fingerprint, a hash of the kernel's canonical
//! text without its names, and the alternative timed — to the measured median, spread and
//! sample count. A second compile of the same model on the same machine finds every
//! alternative here and measures nothing.
//!
//! Invariant: a file that does not parse, has another format number, or was written by
//! another tessera version is ignored as a whole (its kernels may since have changed);
//! [`MeasurementCache::load`] says why in a warning and never fails. Saving merges with
//! what is on disk now and replaces the file atomically (a temporary file in the same
//! directory, then a rename), so a crash or a concurrent writer never leaves half a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file format's number; bumped when the key or entry layout changes.
pub const FORMAT: u32 = 1;

/// The version of tessera that writes and accepts cache files.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One measured alternative.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Median time, seconds.
    pub seconds: f64,
    /// Interquartile range relative to the median.
    pub spread: f64,
    /// Samples behind the median.
    pub runs: u32,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    tessera: String,
    entries: BTreeMap<String, Entry>,
}

/// Measured times by key, loaded from and saved to one file (or kept in memory only).
#[derive(Debug, Default)]
pub struct MeasurementCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, Entry>,
    /// Keys added since loading.
    fresh: Vec<String>,
}

impl MeasurementCache {
    /// A cache kept in memory only.
    pub fn in_memory() -> MeasurementCache {
        MeasurementCache::default()
    }

    /// The cache in `path`: empty when the file does not exist; empty with a warning when
    /// it cannot be read or is not a cache of this format and version.
    pub fn load(path: &Path) -> (MeasurementCache, Option<String>) {
        let (entries, warning) = match read(path) {
            Ok(e) => (e, None),
            Err(why) => (BTreeMap::new(), why),
        };
        (
            MeasurementCache {
                path: Some(path.to_path_buf()),
                entries,
                fresh: Vec::new(),
            },
            warning,
        )
    }

    /// The file this cache saves to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.entries.get(key).copied()
    }

    pub fn insert(&mut self, key: String, e: Entry) {
        if self.entries.insert(key.clone(), e).is_none() {
            self.fresh.push(key);
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the entries added since loading, merged into the file's current contents
    /// (a file that is unreadable or foreign is replaced). Nothing to write, or no file:
    /// nothing happens.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.fresh.is_empty() {
            return Ok(());
        }
        let mut entries = read(path).unwrap_or_default();
        for k in &self.fresh {
            if let Some(e) = self.entries.get(k) {
                entries.insert(k.clone(), *e);
            }
        }
        let text = serde_json::to_string_pretty(&File {
            format: FORMAT,
            tessera: VERSION.to_string(),
            entries,
        })
        .map_err(std::io::Error::other)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            std::fs::create_dir_all(d)?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "measurements.json".into());
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

/// The entries of the cache file at `path`: `Err(None)` when there is no file,
/// `Err(Some(why))` when it is unusable.
fn read(path: &Path) -> Result<BTreeMap<String, Entry>, Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
        Err(e) => {
            return Err(Some(format!(
                "ignoring the measurement cache {}: {e}",
                path.display()
            )));
        }
    };
    let file: File = serde_json::from_str(&text).map_err(|e| {
        Some(format!(
            "ignoring the measurement cache {}: not a cache file ({e})",
            path.display()
        ))
    })?;
    if file.format != FORMAT || file.tessera != VERSION {
        return Err(Some(format!(
            "ignoring the measurement cache {}: written by tessera {} (format {}), this is {VERSION} (format {FORMAT})",
            path.display(),
            file.tessera,
            file.format
        )));
    }
    Ok(file.entries)
}

/// The default cache file: `$TESSERA_CACHE_DIR/measurements.json`, else under
/// `$XDG_CACHE_HOME/tessera`, else `$HOME/.cache/tessera`; `None` without any of them.
pub fn default_path() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = var("TESSERA_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("tessera")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("tessera")))?;
    Some(dir.join("measurements.json"))
}

/// FNV-1a, 64 bits: a stable hash of a kernel's text for cache keys (the standard
/// library's hasher may change between Rust releases).
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tessera-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn entry(s: f64) -> Entry {
        Entry {
            seconds: s,
            spread: 0.1,
            runs: 9,
        }
    }

    #[test]
    fn saved_entries_load_back_and_merge() {
        let d = dir("merge");
        let path = d.join("sub").join("measurements.json");
        let (mut a, w) = MeasurementCache::load(&path);
        assert_eq!(w, None, "a missing file is no warning");
        a.insert("k1".into(), entry(1e-5));
        a.save().unwrap();
        // A second writer that loaded before the first saved adds its own key.
        let (mut b, _) = MeasurementCache::load(&d.join("other.json"));
        b.path = Some(path.clone());
        b.insert("k2".into(), entry(2e-5));
        b.save().unwrap();
        let (c, w) = MeasurementCache::load(&path);
        assert_eq!(w, None);
        assert_eq!(c.get("k1"), Some(entry(1e-5)));
        assert_eq!(c.get("k2"), Some(entry(2e-5)));
        assert_eq!(c.len(), 2);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            leftovers,
            ["measurements.json"],
            "no temporary file is left"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_corrupt_file_is_ignored_with_a_warning_and_replaced() {
        let d = dir("corrupt");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("measurements.json");
        std::fs::write(&path, b"{\"format\": 1, \"tessera\": \"x\", \"entr").unwrap();
        let (mut c, w) = MeasurementCache::load(&path);
        let w = w.expect("a truncated file warns");
        assert!(w.contains("not a cache file"), "{w}");
        assert!(c.is_empty());
        c.insert("k".into(), entry(3e-6));
        c.save().unwrap();
        let (c, w) = MeasurementCache::load(&path);
        assert_eq!((w, c.get("k")), (None, Some(entry(3e-6))));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn another_version_s_file_is_ignored() {
        let d = dir("version");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("measurements.json");
        let old = serde_json::json!({
            "format": FORMAT,
            "tessera": "0.0.0-old",
            "entries": {"k": {"seconds": 1.0, "spread": 0.0, "runs": 1}},
        });
        std::fs::write(&path, old.to_string()).unwrap();
        let (c, w) = MeasurementCache::load(&path);
        let w = w.expect("a foreign version warns");
        assert!(w.contains("0.0.0-old") && w.contains(VERSION), "{w}");
        assert_eq!(c.get("k"), None);
        // Another format number, same version: ignored too.
        let other = serde_json::json!({"format": FORMAT + 1, "tessera": VERSION, "entries": {}});
        std::fs::write(&path, other.to_string()).unwrap();
        assert!(MeasurementCache::load(&path).1.is_some());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_kernel_hash_is_stable() {
        // Pinned: keys written by one build must be found by the next.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
