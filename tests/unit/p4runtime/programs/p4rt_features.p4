/*
 * p4rt_features: a small v1model program that exercises every P4Runtime entity the
 * embedded switch's server handles. It is a test fixture, not a forwarding design.
 *
 *  - packet_in / packet_out controller headers (CPU port 255)
 *  - `acl`: ternary + range + optional key, direct counter, priorities
 *  - `routes`: lpm key, direct meter
 *  - `ecmp`: action selector (members and groups); `nexthops`: action profile
 *  - `ethertypes`: const entries and a const default action
 *  - indexed counter, meter and register; multicast and clone sessions
 *
 * The committed p4rt_features.json and .p4info.txtpb come from p4c 1.2.4.8:
 *   p4c --target bmv2 --arch v1model \
 *       --p4runtime-files p4rt_features.p4info.txtpb -o . p4rt_features.p4
 */
#include <core.p4>
#include <v1model.p4>

const bit<9> CPU_PORT = 255;
const bit<32> CPU_CLONE_SESSION = 100;

/* Prepended by the switch to packets it sends to the controller. */
@controller_header("packet_in")
header packet_in_t {
    bit<9> ingress_port;
    bit<7> _pad;
}

/* Prepended by the controller to packets it injects; egress_port 0 means "use tables". */
@controller_header("packet_out")
header packet_out_t {
    bit<9> egress_port;
    bit<7> _pad;
}

header ethernet_t {
    bit<48> dst_addr;
    bit<48> src_addr;
    bit<16> ether_type;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<8>  diffserv;
    bit<16> total_len;
    bit<16> identification;
    bit<3>  flags;
    bit<13> frag_offset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> hdr_checksum;
    bit<32> src_addr;
    bit<32> dst_addr;
}

struct headers_t {
    packet_in_t  packet_in;
    packet_out_t packet_out;
    ethernet_t   ethernet;
    ipv4_t       ipv4;
}

struct metadata_t {
    bit<8> color;
}

parser FeatureParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                     inout standard_metadata_t std) {
    state start {
        transition select(std.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }
    state parse_packet_out {
        pkt.extract(hdr.packet_out);
        transition parse_ethernet;
    }
    state parse_ethernet {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            0x0800: parse_ipv4;
            default: accept;
        }
    }
    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        transition accept;
    }
}

control FeatureVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control FeatureIngress(inout headers_t hdr, inout metadata_t meta,
                       inout standard_metadata_t std) {
    direct_counter(CounterType.packets_and_bytes) acl_counter;
    direct_meter<bit<8>>(MeterType.bytes) route_meter;
    counter(512, CounterType.packets_and_bytes) port_counter;
    meter(16, MeterType.packets) port_meter;
    register<bit<32>>(16) scratch;
    action_selector(HashAlgorithm.crc16, 32w64, 32w10) ecmp_selector;
    action_profile(32w32) nexthop_profile;

    action drop() {
        mark_to_drop(std);
    }

    action send_to_cpu() {
        std.egress_spec = CPU_PORT;
    }

    action clone_to_cpu() {
        clone(CloneType.I2E, CPU_CLONE_SESSION);
    }

    action set_egress(bit<9> port) {
        std.egress_spec = port;
    }

    action flood(bit<16> group) {
        std.mcast_grp = group;
    }

    action acl_drop() {
        acl_counter.count();
        mark_to_drop(std);
    }

    action acl_to_cpu() {
        acl_counter.count();
        std.egress_spec = CPU_PORT;
    }

    action acl_permit() {
        acl_counter.count();
    }

    action route(bit<9> port) {
        route_meter.read(meta.color);
        std.egress_spec = port;
    }

    action route_drop() {
        route_meter.read(meta.color);
        mark_to_drop(std);
    }

    action set_ttl(bit<8> ttl) {
        hdr.ipv4.ttl = ttl;
    }

    table acl {
        key = {
            hdr.ethernet.dst_addr: ternary;
            hdr.ipv4.ttl: range;
            hdr.ipv4.protocol: optional;
        }
        actions = { acl_drop; acl_to_cpu; acl_permit; }
        default_action = acl_permit();
        counters = acl_counter;
        size = 64;
    }

    table routes {
        key = { hdr.ipv4.dst_addr: lpm; }
        actions = { route; route_drop; }
        default_action = route_drop();
        meters = route_meter;
        size = 128;
    }

    table ecmp {
        key = {
            hdr.ipv4.dst_addr: exact;
            hdr.ipv4.src_addr: selector;
        }
        actions = { set_egress; drop; }
        implementation = ecmp_selector;
        size = 32;
    }

    table nexthops {
        key = { hdr.ethernet.src_addr: exact; }
        actions = { set_egress; drop; }
        implementation = nexthop_profile;
        size = 32;
    }

    table ethertypes {
        key = { hdr.ethernet.ether_type: exact; }
        actions = { NoAction; set_ttl; }
        const default_action = NoAction();
        const entries = {
            0x0806: NoAction();
            0x86dd: set_ttl(64);
        }
    }

    table l2 {
        key = { hdr.ethernet.dst_addr: exact; }
        actions = { set_egress; flood; clone_to_cpu; send_to_cpu; drop; NoAction; }
        default_action = NoAction();
        size = 256;
    }

    apply {
        if (hdr.packet_out.isValid()) {
            /* From the controller: go where it says, no table lookups. */
            std.egress_spec = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            return;
        }
        port_counter.count((bit<32>) std.ingress_port);
        bit<32> seen;
        scratch.read(seen, 0);
        scratch.write(0, seen + 1);
        ethertypes.apply();
        l2.apply();
        if (hdr.ipv4.isValid()) {
            bit<8> color;
            port_meter.execute_meter((bit<32>) std.ingress_port & 15, color);
            routes.apply();
            acl.apply();
            ecmp.apply();
        }
        nexthops.apply();
    }
}

control FeatureEgress(inout headers_t hdr, inout metadata_t meta,
                      inout standard_metadata_t std) {
    apply {
        if (std.egress_port == CPU_PORT) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = std.ingress_port;
            hdr.packet_in._pad = 0;
        }
    }
}

control FeatureComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control FeatureDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.packet_in);
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.ipv4);
    }
}

V1Switch(FeatureParser(), FeatureVerifyChecksum(), FeatureIngress(), FeatureEgress(),
         FeatureComputeChecksum(), FeatureDeparser()) main;
