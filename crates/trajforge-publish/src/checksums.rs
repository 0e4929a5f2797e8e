//! `SHA256SUMS`: one `HASH  PATH` line per file of the dataset, sorted by path, in the format
//! `sha256sum -c SHA256SUMS` verifies.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::PublishError;

pub const FILE_NAME: &str = "SHA256SUMS";

/// Hashes every file under `root` (except `SHA256SUMS`) and writes the list; returns the number
/// of files and their total size.
pub fn write_sha256sums(root: &Path) -> Result<(usize, u64), PublishError> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    files.sort();
    let mut text = String::new();
    let (mut count, mut bytes) = (0, 0);
    for path in &files {
        let relative = path.strip_prefix(root).unwrap_or(path);
        let name = relative.to_string_lossy();
        if name == FILE_NAME {
            continue;
        }
        let (hash, size) = sha256_file(path)?;
        bytes += size;
        count += 1;
        text.push_str(&format!("{hash}  {name}\n"));
    }
    trajforge_io::writer::write_atomic(&root.join(FILE_NAME), text.as_bytes())?;
    Ok((count, bytes))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PublishError> {
    for entry in std::fs::read_dir(dir).map_err(|e| PublishError::io(dir, e))? {
        let path = entry.map_err(|e| PublishError::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Lower-case hex SHA-256 of a file and its size, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> Result<(String, u64), PublishError> {
    let mut file = std::fs::File::open(path).map_err(|e| PublishError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0;
    loop {
        let n = file.read(&mut buf).map_err(|e| PublishError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((hex, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_sorted_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        std::fs::write(dir.path().join("data/b.txt"), b"abc").expect("write");
        std::fs::write(dir.path().join("README.md"), b"").expect("write");
        let (files, bytes) = write_sha256sums(dir.path()).expect("sums");
        assert_eq!((files, bytes), (2, 3));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).expect("read");
        assert_eq!(
            text,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  README.md\n\
             ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  data/b.txt\n"
        );
    }
}
