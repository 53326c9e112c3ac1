//! SMPP `command_status` codes: their names, what they mean in plain words,
//! and whether a submit refused with one is worth retrying.

use super::pdu::PduError;
use crate::net::ErrorClass;

pub const ESME_ROK: u32 = 0x00;
pub const ESME_RINVMSGLEN: u32 = 0x01;
pub const ESME_RINVCMDLEN: u32 = 0x02;
pub const ESME_RINVCMDID: u32 = 0x03;
pub const ESME_RINVBNDSTS: u32 = 0x04;
pub const ESME_RSYSERR: u32 = 0x08;
pub const ESME_RINVSRCADR: u32 = 0x0A;
pub const ESME_RINVDSTADR: u32 = 0x0B;
pub const ESME_RBINDFAIL: u32 = 0x0D;
pub const ESME_RINVPASWD: u32 = 0x0E;
pub const ESME_RINVSYSID: u32 = 0x0F;
pub const ESME_RMSGQFUL: u32 = 0x14;
pub const ESME_RSUBMITFAIL: u32 = 0x45;
pub const ESME_RTHROTTLED: u32 = 0x58;

/// (code, name, class, plain words).
const TABLE: &[(u32, &str, ErrorClass, &str)] = &[
    (ESME_ROK, "ESME_ROK", ErrorClass::Transient, "no error"),
    (
        ESME_RINVMSGLEN,
        "ESME_RINVMSGLEN",
        ErrorClass::Permanent,
        "the message length is invalid",
    ),
    (
        ESME_RINVCMDLEN,
        "ESME_RINVCMDLEN",
        ErrorClass::Permanent,
        "the PDU length is invalid",
    ),
    (
        ESME_RINVCMDID,
        "ESME_RINVCMDID",
        ErrorClass::Permanent,
        "the SMSC does not know the command",
    ),
    (
        ESME_RINVBNDSTS,
        "ESME_RINVBNDSTS",
        ErrorClass::Transient,
        "the bind does not allow this command (bind lost or of the wrong kind)",
    ),
    (0x05, "ESME_RALYBND", ErrorClass::Transient, "already bound"),
    (
        0x06,
        "ESME_RINVPRTFLG",
        ErrorClass::Permanent,
        "invalid priority flag",
    ),
    (
        0x07,
        "ESME_RINVREGDLVFLG",
        ErrorClass::Permanent,
        "invalid registered_delivery flag",
    ),
    (
        ESME_RSYSERR,
        "ESME_RSYSERR",
        ErrorClass::Transient,
        "the SMSC had a system error",
    ),
    (
        ESME_RINVSRCADR,
        "ESME_RINVSRCADR",
        ErrorClass::Permanent,
        "the source address (from) is invalid or not allowed on this account",
    ),
    (
        ESME_RINVDSTADR,
        "ESME_RINVDSTADR",
        ErrorClass::Permanent,
        "the destination address (to) is invalid",
    ),
    (
        0x0C,
        "ESME_RINVMSGID",
        ErrorClass::Permanent,
        "the message id is invalid",
    ),
    (
        ESME_RBINDFAIL,
        "ESME_RBINDFAIL",
        ErrorClass::Permanent,
        "the SMSC refused the bind (check system_id, system_type and the account's bind permissions)",
    ),
    (
        ESME_RINVPASWD,
        "ESME_RINVPASWD",
        ErrorClass::Permanent,
        "the password is wrong",
    ),
    (
        ESME_RINVSYSID,
        "ESME_RINVSYSID",
        ErrorClass::Permanent,
        "the system_id is unknown",
    ),
    (
        ESME_RMSGQFUL,
        "ESME_RMSGQFUL",
        ErrorClass::Transient,
        "the SMSC's message queue is full",
    ),
    (
        0x15,
        "ESME_RINVSERTYP",
        ErrorClass::Permanent,
        "invalid service_type",
    ),
    (
        0x33,
        "ESME_RINVNUMDESTS",
        ErrorClass::Permanent,
        "invalid number of destinations",
    ),
    (
        0x40,
        "ESME_RINVDESTFLAG",
        ErrorClass::Permanent,
        "invalid destination flag",
    ),
    (
        0x42,
        "ESME_RINVSUBREP",
        ErrorClass::Permanent,
        "invalid replace_if_present flag",
    ),
    (
        0x43,
        "ESME_RINVESMCLASS",
        ErrorClass::Permanent,
        "invalid esm_class",
    ),
    (
        0x44,
        "ESME_RCNTSUBDL",
        ErrorClass::Permanent,
        "cannot submit to a distribution list",
    ),
    (
        ESME_RSUBMITFAIL,
        "ESME_RSUBMITFAIL",
        ErrorClass::Permanent,
        "the SMSC refused the submit",
    ),
    (
        0x48,
        "ESME_RINVSRCTON",
        ErrorClass::Permanent,
        "invalid source address TON",
    ),
    (
        0x49,
        "ESME_RINVSRCNPI",
        ErrorClass::Permanent,
        "invalid source address NPI",
    ),
    (
        0x50,
        "ESME_RINVDSTTON",
        ErrorClass::Permanent,
        "invalid destination address TON",
    ),
    (
        0x51,
        "ESME_RINVDSTNPI",
        ErrorClass::Permanent,
        "invalid destination address NPI",
    ),
    (
        0x53,
        "ESME_RINVSYSTYP",
        ErrorClass::Permanent,
        "invalid system_type",
    ),
    (
        0x54,
        "ESME_RINVREPFLAG",
        ErrorClass::Permanent,
        "invalid replace_if_present flag",
    ),
    (
        0x55,
        "ESME_RINVNUMMSGS",
        ErrorClass::Permanent,
        "invalid number of messages",
    ),
    (
        ESME_RTHROTTLED,
        "ESME_RTHROTTLED",
        ErrorClass::Transient,
        "throttled: the account is over its submit rate",
    ),
    (
        0x61,
        "ESME_RINVSCHED",
        ErrorClass::Permanent,
        "invalid scheduled delivery time",
    ),
    (
        0x62,
        "ESME_RINVEXPIRY",
        ErrorClass::Permanent,
        "invalid validity period",
    ),
    (
        0x63,
        "ESME_RINVDFTMSGID",
        ErrorClass::Permanent,
        "invalid predefined message id",
    ),
    (
        0x64,
        "ESME_RX_T_APPN",
        ErrorClass::Transient,
        "the receiving application had a temporary error",
    ),
    (
        0x65,
        "ESME_RX_P_APPN",
        ErrorClass::Permanent,
        "the receiving application refused it for good",
    ),
    (
        0x66,
        "ESME_RX_R_APPN",
        ErrorClass::Permanent,
        "the receiving application rejected it",
    ),
    (
        0x67,
        "ESME_RQUERYFAIL",
        ErrorClass::Transient,
        "the query failed",
    ),
    (
        0xC0,
        "ESME_RINVOPTPARSTREAM",
        ErrorClass::Permanent,
        "the optional parameters are malformed",
    ),
    (
        0xC1,
        "ESME_ROPTPARNOTALLWD",
        ErrorClass::Permanent,
        "an optional parameter is not allowed",
    ),
    (
        0xC2,
        "ESME_RINVPARLEN",
        ErrorClass::Permanent,
        "an optional parameter has an invalid length",
    ),
    (
        0xC3,
        "ESME_RMISSINGOPTPARAM",
        ErrorClass::Permanent,
        "an expected optional parameter is missing",
    ),
    (
        0xC4,
        "ESME_RINVOPTPARAMVAL",
        ErrorClass::Permanent,
        "an optional parameter has an invalid value",
    ),
    (
        0xFE,
        "ESME_RDELIVERYFAILURE",
        ErrorClass::Transient,
        "delivery failed (transient)",
    ),
    (
        0xFF,
        "ESME_RUNKNOWNERR",
        ErrorClass::Transient,
        "unknown error at the SMSC",
    ),
];

/// The code's name (`ESME_RTHROTTLED`), or its number for codes outside SMPP 3.4.
pub fn name(code: u32) -> String {
    TABLE
        .iter()
        .find(|e| e.0 == code)
        .map_or_else(|| format!("0x{code:08X}"), |e| e.1.to_string())
}

/// What the code means, in plain words.
pub fn reason(code: u32) -> &'static str {
    TABLE.iter().find(|e| e.0 == code).map_or(
        "a status outside SMPP 3.4 (vendor-specific: see the SMSC's documentation)",
        |e| e.3,
    )
}

/// Transient codes are retried; the rest fail the run at once. Codes the
/// table does not know are permanent: failing early with the code beats
/// retrying something nobody can say will pass.
pub fn class(code: u32) -> ErrorClass {
    TABLE
        .iter()
        .find(|e| e.0 == code)
        .map_or(ErrorClass::Permanent, |e| e.2)
}

/// `NAME (plain words)`.
pub fn describe(code: u32) -> String {
    format!("{} ({})", name(code), reason(code))
}

/// The status a generic_nack answering a bad frame carries.
pub fn nack_status(e: &PduError) -> u32 {
    match e {
        PduError::UnknownCommand { .. } => ESME_RINVCMDID,
        PduError::TooShort(_) | PduError::TooLong(_) => ESME_RINVCMDLEN,
        _ => ESME_RINVMSGLEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_names_classes_and_words() {
        assert_eq!(
            describe(ESME_RTHROTTLED),
            "ESME_RTHROTTLED (throttled: the account is over its submit rate)"
        );
        for transient in [
            ESME_RTHROTTLED,
            ESME_RMSGQFUL,
            ESME_RSYSERR,
            ESME_RINVBNDSTS,
        ] {
            assert_eq!(
                class(transient),
                ErrorClass::Transient,
                "{}",
                name(transient)
            );
        }
        for permanent in [
            ESME_RINVDSTADR,
            ESME_RINVSRCADR,
            ESME_RBINDFAIL,
            ESME_RINVPASWD,
            0x0400,
        ] {
            assert_eq!(
                class(permanent),
                ErrorClass::Permanent,
                "{}",
                name(permanent)
            );
        }
        assert_eq!(name(0x0400), "0x00000400");
        let mut codes: Vec<u32> = TABLE.iter().map(|e| e.0).collect();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len());
    }
}
