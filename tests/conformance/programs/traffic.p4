/* Conformance program: the traffic manager and packet instances.
 * ctl_t.op chooses what ingress does (unicast, multicast, clones, resubmit,
 * recirculation, drop, truncate, exit, digest, CPU); egress appends info_t describing the copy
 * that leaves (instance type, replication id, length, passes, ports). */
#include <core.p4>
#include <v1model.p4>

const bit<8> OP_UNICAST   = 1;
const bit<8> OP_MULTICAST = 2;
const bit<8> OP_CLONE_I2E = 3;
const bit<8> OP_RESUBMIT  = 4;
const bit<8> OP_RECIRC    = 5;
const bit<8> OP_DROP      = 6;
const bit<8> OP_CLONE_E2E = 7;
const bit<8> OP_TRUNCATE  = 8;
const bit<8> OP_EXIT      = 9;
const bit<8> OP_DIGEST    = 10;

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header ctl_t {
    bit<1> has_info;   /* set by egress: info_t follows */
    bit<7> op;
    bit<8> arg;
}

header info_t {
    bit<32> instance_type;
    bit<16> rid;
    bit<32> length;
    bit<8>  passes;
    bit<8>  resubmitted;
    bit<16> ingress_port;
    bit<16> egress_port;
    bit<8>  cloned;
}

struct headers_t {
    ethernet_t ethernet;
    ctl_t      ctl;
    info_t     info;
}

/* What the control plane learns from OP_DIGEST packets (the P4Info digest "learn_t"). */
struct learn_t {
    bit<48> src;
    bit<9>  port;
    bit<8>  arg;
}

struct metadata_t {
    @field_list(1)
    bit<8> resubmitted;
    @field_list(2)
    bit<8> passes;
    @field_list(3)
    bit<8> cloned;
    bit<8> scratch;
}

parser TmParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.ctl);
        transition select(hdr.ctl.has_info) {
            1: parse_info;
            default: accept;
        }
    }
    state parse_info {
        pkt.extract(hdr.info);
        transition accept;
    }
}

control TmVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control TmIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    apply {
        std.egress_spec = 1;
        bit<8> op = (bit<8>)hdr.ctl.op;
        if (op == OP_MULTICAST) {
            std.mcast_grp = (bit<16>)hdr.ctl.arg;
        } else if (op == OP_CLONE_I2E) {
            clone(CloneType.I2E, (bit<32>)hdr.ctl.arg);
            std.egress_spec = 2;
        } else if (op == OP_RESUBMIT) {
            if (meta.resubmitted == 0) {
                meta.resubmitted = 1;
                meta.scratch = 7;
                resubmit_preserving_field_list(1);
            }
            std.egress_spec = 3;
        } else if (op == OP_DROP) {
            mark_to_drop(std);
        } else if (op == OP_TRUNCATE) {
            truncate(20);
        } else if (op == OP_EXIT) {
            std.egress_spec = 3;
            exit;
        } else if (op == OP_DIGEST) {
            digest<learn_t>(1, { hdr.ethernet.srcAddr, std.ingress_port, hdr.ctl.arg });
        } else if (op == OP_UNICAST) {
            std.egress_spec = (bit<9>)hdr.ctl.arg;
        }
        /* reached unless exit ran */
        if (op == OP_EXIT) {
            std.egress_spec = 4;
        }
    }
}

control TmEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    apply {
        bit<8> op = (bit<8>)hdr.ctl.op;
        if (op == OP_RECIRC && meta.passes < hdr.ctl.arg) {
            meta.passes = meta.passes + 1;
            recirculate_preserving_field_list(2);
        }
        if (op == OP_CLONE_E2E && std.instance_type == 0) {
            meta.cloned = 0x42;
            clone_preserving_field_list(CloneType.E2E, 6, 3);
        }
        hdr.ctl.has_info = 1;
        hdr.info.setValid();
        hdr.info.instance_type = std.instance_type;
        hdr.info.rid = std.egress_rid;
        hdr.info.length = std.packet_length;
        hdr.info.passes = meta.passes;
        hdr.info.resubmitted = meta.resubmitted;
        hdr.info.ingress_port = (bit<16>)std.ingress_port;
        hdr.info.egress_port = (bit<16>)std.egress_port;
        hdr.info.cloned = meta.cloned;
    }
}

control TmComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control TmDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.ctl);
        pkt.emit(hdr.info);
    }
}

V1Switch(TmParser(), TmVerifyChecksum(), TmIngress(), TmEgress(),
         TmComputeChecksum(), TmDeparser()) main;
