/* Conformance program: registers of types other than bit<W>. p4c's P4Info gives a
 * register of a serializable enum its type by name (the width is in type_info) and a
 * register of int<W> an `int` bitstring; the JSON gives both as widths. Each frame
 * reports the EtherType and the running sum of deltas the frames before it left. */
#include <core.p4>
#include <v1model.p4>

enum bit<16> EthTypes {
    IPv4 = 0x0800,
    ARP  = 0x0806
}

header ethernet_t {
    bit<48>  dstAddr;
    bit<48>  srcAddr;
    EthTypes etherType;
}

header res_t {
    bit<16> last_type;   /* the EtherType of the frame before, 0 for the first */
    bit<8>  sum;         /* the sum of the deltas of the frames before (int<8>, wrapping) */
}

struct headers_t {
    ethernet_t ethernet;
    res_t      res;
}

struct metadata_t { }

parser TrParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        transition accept;
    }
}

control TrVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control TrIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    register<EthTypes>(1) types;
    register<int<8>>(1) sums;

    action add(int<8> delta) {
        int<8> sum;
        sums.read(sum, 0);
        hdr.res.sum = (bit<8>)sum;
        sums.write(0, sum + delta);
    }

    table deltas {
        key = { hdr.ethernet.etherType: exact; }
        actions = { add; NoAction; }
        default_action = NoAction();
    }

    apply {
        std.egress_spec = 1;
        hdr.res.setValid();
        EthTypes last;
        types.read(last, 0);
        hdr.res.last_type = (bit<16>)last;
        types.write(0, hdr.ethernet.etherType);
        deltas.apply();
    }
}

control TrEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    apply { }
}

control TrComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control TrDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.res);
    }
}

V1Switch(TrParser(), TrVerifyChecksum(), TrIngress(), TrEgress(), TrComputeChecksum(),
         TrDeparser()) main;
