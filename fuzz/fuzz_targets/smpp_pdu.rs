//! SMPP PDUs as a peer sends them: any bytes through the frame parser and
//! the stream reader give a PDU or an error, never a panic, and never more
//! memory than the 64 KiB cap; whatever decodes encodes back to the same body.
//! The input is the raw bytes of the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_canary::providers::smpp::pdu::{MAX_PDU_LEN, Pdu};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((pdu, used))) = Pdu::parse_frame(rest) {
        assert!(used <= MAX_PDU_LEN && used <= rest.len());
        if let Ok(again) = pdu.encode() {
            assert_eq!(Pdu::decode(&again).expect("own encoding decodes").body, pdu.body);
        }
        rest = &rest[used..];
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut reader = data;
        while let Ok(Some(_)) = Pdu::read(&mut reader).await {}
    });
});
