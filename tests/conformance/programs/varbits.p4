/* Conformance program: varbit fields beyond extract and emit. A local varbit variable
 * (p4c makes it a metadata header with one varbit field), comparisons of varbit fields
 * and of headers with a varbit field (p4c expands those into their fields), and
 * extract_VL into a header stack. The lengths come from the pre header, in bytes.
 * Ingress writes the comparisons into res and swaps the data of a and b through the
 * local variable, so b is emitted with a's length. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header pre_t {
    bit<8> la;       /* bytes of a.data */
    bit<8> lb;       /* bytes of b.data */
    bit<8> ls;       /* bytes of each vs[i].v */
}

header opt_t {
    bit<8>     kind;
    varbit<32> data;
}

header vl_t {
    varbit<16> v;
}

header res_t {
    bit<8> fields_eq;   /* a.data == b.data: BMv2 compares values, whatever the lengths */
    bit<8> headers_eq;  /* a == b: both valid (or both invalid), kind and data equal */
    bit<8> stack_eq;    /* vs[0] == vs[1] */
    bit<8> local_eq;    /* the local copy of a.data == b.data after the swap */
}

struct headers_t {
    ethernet_t ethernet;
    pre_t      pre;
    res_t      res;
    opt_t      a;
    opt_t      b;
    vl_t[2]    vs;
}

struct metadata_t { }

parser VbParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.pre);
        pkt.extract(hdr.a, (bit<32>)hdr.pre.la * 8);
        pkt.extract(hdr.b, (bit<32>)hdr.pre.lb * 8);
        pkt.extract(hdr.vs.next, (bit<32>)hdr.pre.ls * 8);
        pkt.extract(hdr.vs.next, (bit<32>)hdr.pre.ls * 8);
        transition accept;
    }
}

control VbVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control VbIngress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    apply {
        std.egress_spec = 1;
        hdr.res.setValid();
        hdr.res.fields_eq = hdr.a.data == hdr.b.data ? 8w1 : 8w0;
        hdr.res.headers_eq = hdr.a == hdr.b ? 8w1 : 8w0;
        hdr.res.stack_eq = hdr.vs[0] == hdr.vs[1] ? 8w1 : 8w0;
        varbit<32> saved = hdr.a.data;
        hdr.a.data = hdr.b.data;
        hdr.b.data = saved;
        hdr.res.local_eq = saved == hdr.b.data ? 8w1 : 8w0;
    }
}

control VbEgress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    apply { }
}

control VbComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control VbDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.pre);
        pkt.emit(hdr.res);
        pkt.emit(hdr.a);
        pkt.emit(hdr.b);
        pkt.emit(hdr.vs);
    }
}

V1Switch(VbParser(), VbVerifyChecksum(), VbIngress(), VbEgress(), VbComputeChecksum(),
         VbDeparser()) main;
