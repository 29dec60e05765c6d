//! The bytes of a device-mapper ioctl (`/usr/include/linux/dm-ioctl.h`), encoded and
//! decoded without `unsafe`: `struct dm_ioctl` is followed by the data area, which for
//! `DM_TABLE_STATUS` holds one `struct dm_target_spec` per target, each followed by its
//! NUL-terminated parameter string. The `sys` module only hands this buffer to the
//! kernel; everything the kernel writes back is checked here before it is used.

/// Size of `struct dm_ioctl` (checked against the `#[repr(C)]` struct in `sys`).
pub const HEADER_LEN: usize = 312;
/// Size of `struct dm_target_spec`.
pub const TARGET_SPEC_LEN: usize = 40;
/// Interface version we speak (`DM_VERSION_MAJOR`.`DM_VERSION_MINOR`.`DM_VERSION_PATCHLEVEL`
/// of the header; the kernel accepts any minor it is newer than).
pub const VERSION: [u32; 3] = [4, 0, 0];
/// In: report the table instead of the status (`DM_STATUS_TABLE_FLAG`).
pub const STATUS_TABLE_FLAG: u32 = 1 << 4;
/// Out: the data did not fit (`DM_BUFFER_FULL_FLAG`).
pub const BUFFER_FULL_FLAG: u32 = 1 << 8;
/// In: do not flush (`DM_NOFLUSH_FLAG`): a status query never waits for I/O.
pub const NOFLUSH_FLAG: u32 = 1 << 11;

pub(crate) const OFFSET_DATA_SIZE: usize = 12;
pub(crate) const OFFSET_DATA_START: usize = 16;
pub(crate) const OFFSET_TARGET_COUNT: usize = 20;
pub(crate) const OFFSET_FLAGS: usize = 28;
pub(crate) const OFFSET_DEV: usize = 40;
const TYPE_NAME_LEN: usize = 16;

/// One target of a map's live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// First sector it maps.
    pub start: u64,
    /// Sectors it maps.
    pub length: u64,
    /// Target type (`multipath`, `linear`, ...).
    pub target_type: String,
    /// Its table or status words.
    pub params: String,
}

/// A reply the kernel should not have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("reply shorter than struct dm_ioctl ({0} bytes)")]
    ShortHeader(usize),
    #[error("data start {start} or size {size} outside the {len}-byte buffer")]
    DataBounds { start: u32, size: u32, len: usize },
    #[error("target {index} lies outside the data area")]
    TargetBounds { index: u32 },
    #[error("target {index}'s parameters are not NUL-terminated text")]
    Params { index: u32 },
}

/// A `DM_TABLE_STATUS` request for the device `dev` (its `st_rdev`), with a data area
/// making the whole buffer `len` bytes (at least the header).
pub fn table_status_request(dev: u64, flags: u32, len: usize) -> Vec<u8> {
    let len = len.max(HEADER_LEN);
    let mut buf = vec![0u8; len];
    for (i, part) in VERSION.iter().enumerate() {
        put_u32(&mut buf, i * 4, *part);
    }
    put_u32(
        &mut buf,
        OFFSET_DATA_SIZE,
        u32::try_from(len).unwrap_or(u32::MAX),
    );
    put_u32(&mut buf, OFFSET_DATA_START, HEADER_LEN as u32);
    put_u32(&mut buf, OFFSET_FLAGS, flags);
    buf[OFFSET_DEV..OFFSET_DEV + 8].copy_from_slice(&dev.to_ne_bytes());
    buf
}

/// Whether the kernel said the data did not fit.
pub fn buffer_full(reply: &[u8]) -> Result<bool, DataError> {
    Ok(u32_at(reply, OFFSET_FLAGS)? & BUFFER_FULL_FLAG != 0)
}

/// The targets of a `DM_TABLE_STATUS` reply.
pub fn decode_targets(reply: &[u8]) -> Result<Vec<Target>, DataError> {
    let start = u32_at(reply, OFFSET_DATA_START)?;
    let size = u32_at(reply, OFFSET_DATA_SIZE)?;
    let count = u32_at(reply, OFFSET_TARGET_COUNT)?;
    let bounds = DataError::DataBounds {
        start,
        size,
        len: reply.len(),
    };
    let (start_at, end_at) = (start as usize, (size as usize).min(reply.len()));
    let data = reply.get(start_at..end_at).ok_or(bounds)?;
    let mut targets = Vec::new();
    let mut offset = 0usize;
    for index in 0..count {
        let outside = DataError::TargetBounds { index };
        let spec = data
            .get(offset..offset.checked_add(TARGET_SPEC_LEN).ok_or(outside.clone())?)
            .ok_or(outside.clone())?;
        let start = u64::from_ne_bytes(spec[0..8].try_into().unwrap_or_default());
        let length = u64::from_ne_bytes(spec[8..16].try_into().unwrap_or_default());
        let next = u32::from_ne_bytes(spec[20..24].try_into().unwrap_or_default()) as usize;
        let target_type = c_string(&spec[24..24 + TYPE_NAME_LEN]);
        let params_area = data
            .get(offset + TARGET_SPEC_LEN..)
            .ok_or(outside.clone())?;
        let nul = params_area
            .iter()
            .position(|&b| b == 0)
            .ok_or(DataError::Params { index })?;
        let params = std::str::from_utf8(&params_area[..nul])
            .map_err(|_| DataError::Params { index })?
            .to_owned();
        targets.push(Target {
            start,
            length,
            target_type,
            params,
        });
        // `next` counts from the first spec for DM_TABLE_STATUS; it must move forward.
        if index + 1 < count {
            if next <= offset {
                return Err(DataError::TargetBounds { index: index + 1 });
            }
            offset = next;
        }
    }
    Ok(targets)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn u32_at(buf: &[u8], offset: usize) -> Result<u32, DataError> {
    buf.get(offset..offset + 4)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or(DataError::ShortHeader(buf.len()))
}

fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
    if let Some(slot) = buf.get_mut(offset..offset + 4) {
        slot.copy_from_slice(&value.to_ne_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reply as the kernel writes it, for tests.
    pub(crate) fn reply_with(targets: &[(&str, &str)]) -> Vec<u8> {
        let mut buf = table_status_request(0, 0, HEADER_LEN);
        let mut data = Vec::new();
        for (i, (kind, params)) in targets.iter().enumerate() {
            let mut spec = vec![0u8; TARGET_SPEC_LEN];
            spec[0..8].copy_from_slice(&(i as u64 * 100).to_ne_bytes());
            spec[8..16].copy_from_slice(&100u64.to_ne_bytes());
            spec[24..24 + kind.len()].copy_from_slice(kind.as_bytes());
            let mut body = spec;
            body.extend_from_slice(params.as_bytes());
            body.push(0);
            while body.len() % 8 != 0 {
                body.push(0);
            }
            let next = (data.len() + body.len()) as u32;
            body[20..24].copy_from_slice(&next.to_ne_bytes());
            data.extend_from_slice(&body);
        }
        buf.extend_from_slice(&data);
        let len = buf.len() as u32;
        put_u32(&mut buf, OFFSET_DATA_SIZE, len);
        put_u32(&mut buf, OFFSET_TARGET_COUNT, targets.len() as u32);
        buf
    }

    #[test]
    fn request_header() {
        let buf = table_status_request(0x0000_fe00, STATUS_TABLE_FLAG, 4096);
        assert_eq!(buf.len(), 4096);
        assert_eq!(u32_at(&buf, 0).unwrap(), 4);
        assert_eq!(u32_at(&buf, OFFSET_DATA_SIZE).unwrap(), 4096);
        assert_eq!(u32_at(&buf, OFFSET_DATA_START).unwrap(), HEADER_LEN as u32);
        assert_eq!(u32_at(&buf, OFFSET_FLAGS).unwrap(), STATUS_TABLE_FLAG);
        assert_eq!(&buf[OFFSET_DEV..OFFSET_DEV + 8], &0xfe00u64.to_ne_bytes());
        assert!(!buffer_full(&buf).unwrap());
    }

    #[test]
    fn targets_decode() {
        let reply = reply_with(&[("multipath", "0 0 1 1 round-robin 0 1 1 8:0 1")]);
        let targets = decode_targets(&reply).unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].target_type, "multipath");
        assert_eq!(targets[0].params, "0 0 1 1 round-robin 0 1 1 8:0 1");
        assert_eq!(targets[0].length, 100);
        let two =
            decode_targets(&reply_with(&[("linear", "8:0 0"), ("linear", "8:16 0")])).unwrap();
        assert_eq!(two[1].params, "8:16 0");
        assert_eq!(two[1].start, 100);
    }

    #[test]
    fn bad_replies_are_refused() {
        assert_eq!(decode_targets(&[0u8; 10]), Err(DataError::ShortHeader(10)));
        let mut reply = reply_with(&[("multipath", "x")]);
        put_u32(&mut reply, OFFSET_TARGET_COUNT, 2);
        assert_eq!(
            decode_targets(&reply),
            Err(DataError::TargetBounds { index: 1 })
        );
        let mut reply = reply_with(&[("multipath", "x")]);
        put_u32(&mut reply, OFFSET_DATA_START, 100_000);
        assert!(matches!(
            decode_targets(&reply),
            Err(DataError::DataBounds { .. })
        ));
        let mut reply = reply_with(&[("multipath", "x")]);
        let last = reply.len();
        reply[HEADER_LEN + TARGET_SPEC_LEN..last].fill(b'y');
        assert_eq!(decode_targets(&reply), Err(DataError::Params { index: 0 }));
    }
}
