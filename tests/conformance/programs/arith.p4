/* Conformance program: expression semantics with exact bit widths.
 * The packet carries operands (in_t); ingress computes every kind of operation into
 * out_t, which the deparser emits right after the operands. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header in_t {
    bit<8>  a;
    bit<8>  b;
    int<8>  sa;
    int<8>  sb;
    bit<16> w;
    bit<4>  n;
    bit<4>  pad;
}

header out_t {
    bit<8>  add;
    bit<8>  sub;
    bit<8>  mul;
    bit<8>  usadd;
    bit<8>  ussub;
    int<8>  ssadd;
    int<8>  sssub;
    bit<8>  shl;
    bit<8>  shr;
    int<8>  sshr;
    bit<4>  hi;
    bit<4>  lo;
    bit<16> cat;
    int<16> sext;
    bit<16> zext;
    bit<8>  neg;
    bit<8>  cmpl;
    bit<8>  logic;
    bit<8>  tern;
    int<32> wide;
    bit<8>  wslice;
    bit<8>  requant;
    int<8>  sadd;
    bit<1>  f_slt;
    bit<1>  f_ult;
    bit<1>  f_eq;
    bit<1>  f_and;
    bit<1>  f_or;
    bit<1>  f_not;
    bit<1>  f_sge;
    bit<1>  f_bool;
}

struct headers_t {
    ethernet_t ethernet;
    in_t       i;
    out_t      o;
}

struct metadata_t {
    int<16> q;
}

parser ArithParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.i);
        transition accept;
    }
}

control ArithVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control ArithIngress(inout headers_t hdr, inout metadata_t meta,
                     inout standard_metadata_t std) {
    apply {
        std.egress_spec = 1;
        hdr.o.setValid();
        hdr.o.add = hdr.i.a + hdr.i.b;
        hdr.o.sub = hdr.i.a - hdr.i.b;
        hdr.o.mul = hdr.i.a * hdr.i.b;
        hdr.o.usadd = hdr.i.a |+| hdr.i.b;
        hdr.o.ussub = hdr.i.a |-| hdr.i.b;
        hdr.o.ssadd = hdr.i.sa |+| hdr.i.sb;
        hdr.o.sssub = hdr.i.sa |-| hdr.i.sb;
        hdr.o.sadd = hdr.i.sa + hdr.i.sb;
        hdr.o.shl = hdr.i.a << hdr.i.n;
        hdr.o.shr = hdr.i.a >> hdr.i.n;
        hdr.o.sshr = hdr.i.sa >> hdr.i.n;
        hdr.o.hi = hdr.i.a[7:4];
        hdr.o.lo = hdr.i.b[3:0];
        hdr.o.cat = hdr.i.a ++ hdr.i.b;
        hdr.o.sext = (int<16>)hdr.i.sa;
        hdr.o.zext = (bit<16>)hdr.i.a;
        hdr.o.neg = -hdr.i.a;
        hdr.o.cmpl = ~hdr.i.a;
        hdr.o.logic = (hdr.i.a & hdr.i.b) | (hdr.i.a ^ 8w0x0F);
        hdr.o.tern = (hdr.i.a > hdr.i.b) ? hdr.i.a : hdr.i.b;
        hdr.o.wide = (int<32>)hdr.i.sa * (int<32>)hdr.i.sb + (int<32>)(bit<32>)hdr.i.w;
        hdr.o.wslice = hdr.i.w[11:4];
        meta.q = (int<16>)hdr.i.sa * (int<16>)hdr.i.sb;
        hdr.o.requant = (meta.q > 127) ? 8w0x7F : ((meta.q < -128) ? 8w0x80 : meta.q[7:0]);
        hdr.o.f_slt = (hdr.i.sa < hdr.i.sb) ? 1w1 : 1w0;
        hdr.o.f_ult = (hdr.i.a < hdr.i.b) ? 1w1 : 1w0;
        hdr.o.f_eq = (hdr.i.a == hdr.i.b) ? 1w1 : 1w0;
        if (hdr.i.a != 0 && hdr.i.b != 0) {
            hdr.o.f_and = 1;
        }
        if (hdr.i.a == 0 || hdr.i.b == 0) {
            hdr.o.f_or = 1;
        }
        if (!(hdr.i.a > hdr.i.b)) {
            hdr.o.f_not = 1;
        }
        if (hdr.i.sa >= hdr.i.sb) {
            hdr.o.f_sge = 1;
        }
        bool big = hdr.i.w > 16w1000;
        if (big) {
            hdr.o.f_bool = 1;
        }
    }
}

control ArithEgress(inout headers_t hdr, inout metadata_t meta,
                    inout standard_metadata_t std) {
    apply { }
}

control ArithComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control ArithDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.i);
        pkt.emit(hdr.o);
    }
}

V1Switch(ArithParser(), ArithVerifyChecksum(), ArithIngress(), ArithEgress(),
         ArithComputeChecksum(), ArithDeparser()) main;
