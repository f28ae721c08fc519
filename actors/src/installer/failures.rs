//! IPA's error classes raised by the generic steps (type names and codes as IPA's
//! `ironic_python_agent.errors`).

use crate::errors::AgentError;

/// `BlockDeviceEraseError`.
pub fn block_device_erase(details: impl Into<String>) -> AgentError {
    AgentError::new(
        "BlockDeviceEraseError",
        500,
        "Error erasing block device",
        details,
    )
}

/// `ProtectedDeviceError`.
pub fn protected_device(device: &str, what: &str) -> AgentError {
    AgentError::new(
        "ProtectedDeviceError",
        500,
        "Protected device located, cleaning aborted.",
        format!(
            "Found device {device} {what}. Erasing it would destroy a shared or special file system; \
             set driver_internal_info.wipe_special_filesystems to false to erase it anyway."
        ),
    )
}

/// `ImageDownloadError`.
pub fn image_download(image_id: &str, msg: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        "ImageDownloadError",
        500,
        "Error downloading image",
        format!("Download of image {image_id} failed: {msg}"),
    )
}

/// `ImageDownloadFatalError`: not retried (a 4xx answer).
pub fn image_download_fatal(image_id: &str, msg: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        "ImageDownloadFatalError",
        500,
        "Error downloading image",
        format!("Download of image {image_id} failed: {msg}"),
    )
}

/// `ImageDownloadOutofSpaceError`: not retried.
pub fn image_out_of_space(image_id: &str, msg: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        "ImageDownloadOutofSpaceError",
        500,
        "Error downloading image",
        format!("Download of image {image_id} failed: {msg}"),
    )
}

/// `ImageDownloadTimeoutError` (code 408).
pub fn image_download_timeout(image_id: &str, msg: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        "ImageDownloadTimeoutError",
        408,
        "Image download timeout",
        format!("Download of image {image_id} failed: {msg}"),
    )
}

/// `ImageChecksumError`.
pub fn image_checksum(image_id: &str, location: &str, expected: &str, got: &str) -> AgentError {
    AgentError::new(
        "ImageChecksumError",
        500,
        "Error verifying image checksum",
        format!(
            "Image failed to verify against checksum. location: {location}; image ID: {image_id}; \
             image checksum: {expected}; verification checksum: {got}"
        ),
    )
}

/// `ImageWriteError`.
pub fn image_write(device: &str, msg: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        "ImageWriteError",
        500,
        "Error writing image to device",
        format!("Writing image to device {device} failed: {msg}"),
    )
}

/// `InvalidImage`.
pub fn invalid_image(details: impl Into<String>) -> AgentError {
    AgentError::new(
        "InvalidImage",
        500,
        "The provided image is not valid for use",
        details,
    )
}

/// `SoftwareRAIDError`.
pub fn software_raid(details: impl Into<String>) -> AgentError {
    AgentError::new(
        "SoftwareRAIDError",
        500,
        "Software RAID caused unknown error",
        details,
    )
}

/// `ImageChecksumError` for an unusable checksum configuration.
pub fn image_checksum_config(details: impl Into<String>) -> AgentError {
    AgentError::new(
        "ImageChecksumError",
        500,
        "Error verifying image checksum",
        details,
    )
}
