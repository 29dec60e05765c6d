//! Descriptors of every kind a test may send: regular files (read-write and read-only),
//! `/dev/null`, pipes, sockets. Loop devices are in [`crate::reference::LoopDevice`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use tempfile::NamedTempFile;

/// A regular file opened read-write (removed when dropped), with `len` zero bytes.
pub fn regular_file(len: u64) -> io::Result<NamedTempFile> {
    let file = NamedTempFile::new()?;
    file.as_file().set_len(len)?;
    Ok(file)
}

/// A read-only descriptor of a fresh regular file (the file is removed when the
/// returned guard is dropped).
pub fn read_only_file() -> io::Result<(File, NamedTempFile)> {
    let backing = regular_file(4096)?;
    let read_only = OpenOptions::new().read(true).open(backing.path())?;
    Ok((read_only, backing))
}

/// `path` opened read-write (an image file, a device node).
pub fn open_read_write(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// `/dev/null` opened read-write: a character device that is not a SCSI device.
pub fn dev_null() -> io::Result<File> {
    open_read_write(Path::new("/dev/null"))
}

/// Both ends of a pipe (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)
}

/// A connected pair of Unix stream sockets.
pub fn socket_pair() -> io::Result<(UnixStream, UnixStream)> {
    UnixStream::pair()
}

/// A loop device over an image holding an MBR with one partition, and that partition's
/// device node. Detached when dropped. Needs root, the loop driver, `losetup` and
/// `partx` (util-linux).
#[derive(Debug)]
pub struct PartitionedLoop {
    disk: std::path::PathBuf,
    partition: std::path::PathBuf,
    _image: NamedTempFile,
}

/// Bytes of the image behind [`PartitionedLoop`].
const IMAGE_LEN: u64 = 4 << 20;

impl PartitionedLoop {
    /// Builds the image, attaches it and makes the kernel scan its partition table.
    pub fn attach() -> io::Result<Self> {
        let image = regular_file(IMAGE_LEN)?;
        std::fs::write(image.path(), mbr_with_one_partition())?;
        image.as_file().set_len(IMAGE_LEN)?;
        let output = std::process::Command::new("losetup")
            .args(["-P", "-f", "--show"])
            .arg(image.path())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "losetup: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let disk = std::path::PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let partition = std::path::PathBuf::from(format!("{}p1", disk.display()));
        let device = Self {
            disk,
            partition,
            _image: image,
        };
        if !device.partition.exists() {
            // Without udev the partition may be known to the kernel but have no node
            // yet; `partx -a` asks the kernel to add it (devtmpfs then creates it).
            let _ = std::process::Command::new("partx")
                .arg("-a")
                .arg(&device.disk)
                .output();
        }
        if device.partition.exists() {
            Ok(device)
        } else {
            Err(io::Error::other(format!(
                "no partition node {} appeared",
                device.partition.display()
            )))
        }
    }

    /// The whole loop device.
    pub fn disk(&self) -> &std::path::Path {
        &self.disk
    }

    /// Its first partition.
    pub fn partition(&self) -> &std::path::Path {
        &self.partition
    }
}

impl Drop for PartitionedLoop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.disk)
            .output();
    }
}

/// A master boot record with one Linux partition (type 0x83) at sector 2048, 4096
/// sectors long: the layout facts of the classic MBR (entries at 446, signature at 510).
fn mbr_with_one_partition() -> Vec<u8> {
    let mut mbr = vec![0u8; 512];
    let entry = &mut mbr[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&4096u32.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    mbr
}
