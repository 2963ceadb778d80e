/* Conformance program: match-action tables.
 * Every match kind (exact, lpm, ternary, range, optional, validity), const entries and
 * const default actions, hit/miss and action_run branches, direct and indirect counters,
 * meters (indirect and direct), registers, an action profile and an action selector.
 * Each table writes its outcome into res_t, which the deparser emits after the key. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header key_t {
    bit<8>  e;
    bit<16> l;
    bit<8>  t;
    bit<8>  r;
    bit<8>  o;
    bit<8>  sel;
    bit<8>  flags;     /* bit 0: the extra header follows */
}

header extra_t {
    bit<8> x;
}

header res_t {
    bit<8>  exact;
    bit<8>  lpm;
    bit<8>  ternary;
    bit<8>  range;
    bit<8>  optional;
    bit<8>  valid;
    bit<8>  konst;
    bit<8>  hitmiss;
    bit<8>  run;
    bit<8>  color;
    bit<8>  dcolor;
    bit<32> reg;
    bit<8>  prof;
    bit<8>  selected;
}

struct headers_t {
    ethernet_t ethernet;
    key_t      k;
    extra_t    extra;
    res_t      res;
}

struct metadata_t {
    bit<32> reg;
    bit<2>  color;
    bit<2>  dcolor;
}

parser TblParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.k);
        transition select(hdr.k.flags[0:0]) {
            1: parse_extra;
            default: accept;
        }
    }
    state parse_extra {
        pkt.extract(hdr.extra);
        transition accept;
    }
}

control TblVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control TblIngress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    direct_counter(CounterType.packets_and_bytes) exact_hits;
    counter(8, CounterType.packets_and_bytes) by_e;
    meter(4, MeterType.packets) m;
    direct_meter<bit<2>>(MeterType.packets) dm;
    register<bit<32>>(8) regs;
    action_profile(16) prof;
    action_selector(HashAlgorithm.crc16, 16, 16) sel_prof;

    action set_exact(bit<8> v) { hdr.res.exact = v; exact_hits.count(); }
    action set_lpm(bit<8> v) { hdr.res.lpm = v; }
    action set_ternary(bit<8> v) { hdr.res.ternary = v; }
    action set_range(bit<8> v) { hdr.res.range = v; }
    action set_optional(bit<8> v) { hdr.res.optional = v; }
    action set_valid(bit<8> v) { hdr.res.valid = v; }
    action set_konst(bit<8> v) { hdr.res.konst = v; }
    action set_hitmiss(bit<8> v) { hdr.res.hitmiss = v; }
    action run_a() { hdr.res.run = 0xA; }
    action run_b(bit<8> v) { hdr.res.run = v; }
    action read_dmeter() { dm.read(meta.dcolor); }
    action set_prof(bit<8> v) { hdr.res.prof = v; }
    action set_selected(bit<8> v, bit<9> port) { hdr.res.selected = v; std.egress_spec = port; }

    table t_exact {
        key = { hdr.k.e: exact; }
        actions = { set_exact; NoAction; }
        counters = exact_hits;
        default_action = NoAction();
    }
    table t_lpm {
        key = { hdr.k.l: lpm; }
        actions = { set_lpm; }
        default_action = set_lpm(0xEE);
    }
    table t_ternary {
        key = { hdr.k.t: ternary; hdr.k.e: exact; }
        actions = { set_ternary; NoAction; }
        default_action = NoAction();
    }
    table t_range {
        key = { hdr.k.r: range; }
        actions = { set_range; NoAction; }
        default_action = NoAction();
    }
    table t_optional {
        key = { hdr.k.o: optional; hdr.k.e: exact; }
        actions = { set_optional; NoAction; }
        default_action = NoAction();
    }
    table t_valid {
        key = { hdr.extra.isValid(): exact; hdr.k.e: ternary; }
        actions = { set_valid; NoAction; }
        default_action = NoAction();
    }
    table t_const {
        key = { hdr.k.t: ternary; }
        actions = { set_konst; }
        const default_action = set_konst(0xCC);
        const entries = {
            0x10 &&& 0xF0: set_konst(1);
            0x11: set_konst(2);
            0x20 &&& 0xE0: set_konst(3);
        }
    }
    table t_hitmiss {
        key = { hdr.k.e: exact; }
        actions = { NoAction; }
        default_action = NoAction();
    }
    table t_run {
        key = { hdr.k.e: exact; }
        actions = { run_a; run_b; NoAction; }
        default_action = NoAction();
    }
    table t_dmeter {
        key = { hdr.k.e: exact; }
        actions = { read_dmeter; NoAction; }
        meters = dm;
        default_action = NoAction();
    }
    table t_prof {
        key = { hdr.k.e: exact; }
        actions = { set_prof; NoAction; }
        implementation = prof;
    }
    table t_sel {
        key = { hdr.k.e: exact; hdr.k.sel: selector; }
        actions = { set_selected; NoAction; }
        implementation = sel_prof;
    }

    apply {
        std.egress_spec = 1;
        hdr.res.setValid();
        t_exact.apply();
        t_lpm.apply();
        t_ternary.apply();
        t_range.apply();
        t_optional.apply();
        t_valid.apply();
        t_const.apply();
        if (t_hitmiss.apply().hit) {
            hdr.res.hitmiss = 1;
        } else {
            hdr.res.hitmiss = 2;
        }
        switch (t_run.apply().action_run) {
            run_a: { hdr.res.run = hdr.res.run + 1; }
            run_b: { hdr.res.run = hdr.res.run + 2; }
            default: { hdr.res.run = 0x55; }
        }
        by_e.count((bit<32>)(hdr.k.e & 7));
        m.execute_meter((bit<32>)(hdr.k.e & 3), meta.color);
        hdr.res.color = (bit<8>)meta.color;
        meta.dcolor = 3;
        t_dmeter.apply();
        hdr.res.dcolor = (bit<8>)meta.dcolor;
        regs.read(meta.reg, (bit<32>)(hdr.k.e & 7));
        hdr.res.reg = meta.reg;
        regs.write((bit<32>)(hdr.k.e & 7), meta.reg + 1);
        t_prof.apply();
        t_sel.apply();
    }
}

control TblEgress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    apply { }
}

control TblComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control TblDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.k);
        pkt.emit(hdr.extra);
        pkt.emit(hdr.res);
    }
}

V1Switch(TblParser(), TblVerifyChecksum(), TblIngress(), TblEgress(),
         TblComputeChecksum(), TblDeparser()) main;
