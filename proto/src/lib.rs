//! The heatnet wire contract (protobuf package `heatnet.v1`) and the conversions
//! between its generated types and the domain types of `model`.
//!
//! This is the only crate that knows protobuf. Generated types are used by the
//! gRPC edge of each process and converted here, with precise errors, before
//! anything else sees them: a missing field, an unknown enum value, a number out
//! of range or an unknown node is refused with the field's name and the reason.

pub mod convert;

/// Generated code for `heatnet.v1`.
#[allow(clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("heatnet.v1");
}

pub use convert::{
    ConversionError, EdgeAlarm, EdgeAlarmKind, check_known_actors, decode_batch, edge_alarms,
    encode_batch,
};

/// Largest message a heatnet client accepts, bytes. The state of a whole
/// network (`GetNetworkState`) of 3,323 substations with 20 buildings each is
/// about 8.6 MB, over tonic's default of 4 MB; this leaves room for seven times
/// that. Servers send any size (tonic's default).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A control-room client over `channel` that accepts [`MAX_MESSAGE_BYTES`].
pub fn control_room_client(
    channel: tonic::transport::Channel,
) -> v1::control_room_service_client::ControlRoomServiceClient<tonic::transport::Channel> {
    v1::control_room_service_client::ControlRoomServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// Size of a message on the wire, bytes.
pub fn encoded_len(m: &impl prost::Message) -> usize {
    m.encoded_len()
}

/// The encoded file descriptor set of `heatnet.v1`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("heatnet_v1_descriptor");
