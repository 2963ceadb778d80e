"""The secrets file of sealed tensors (controller.secrets): made private, checked in one
line, each host given only its own keys."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from controller.cli import main
from controller.secrets import host_keys, load_secrets, make_secrets, pairs
from controller.topology import load_topology
from dcia.errors import TopologyError

ROOT = Path(__file__).resolve().parents[3]
REDUNDANT = load_topology(ROOT / "topologies" / "redundant.toml")


def test_one_key_per_edge_cloud_pair_private_and_read_back(tmp_path):
    path = tmp_path / "keys" / "t.toml"
    made = make_secrets(REDUNDANT, path)
    assert list(made) == pairs(REDUNDANT) == [("h1", "h2"), ("h1", "h3")]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secrets(REDUNDANT, path) == made
    assert made[("h1", "h2")] != made[("h1", "h3")]
    with pytest.raises(TopologyError, match="exists: remove it first"):
        make_secrets(REDUNDANT, path)


def test_each_host_gets_its_peers_addresses_and_nothing_else(tmp_path):
    made = make_secrets(REDUNDANT, tmp_path / "t.toml")
    edge = host_keys(REDUNDANT, made, "h1")
    assert edge.keys == {REDUNDANT.host_address("h2", "primary"): made[("h1", "h2")],
                         REDUNDANT.host_address("h3", "backup"): made[("h1", "h3")]}
    cloud = host_keys(REDUNDANT, made, "h2")
    assert set(cloud.keys.values()) == {made[("h1", "h2")]}
    assert set(cloud.keys) == {i.ip.split("/")[0] for i in REDUNDANT.hosts["h1"].interfaces}


@pytest.mark.parametrize("text, mode, message", [
    ('[pairs]\n"h1-h2" = "00"\n"h1-h3" = "00"\n', 0o600, "the key of h1-h2 is 1 bytes; give 32"),
    ('[pairs]\n"h1-h2" = "zz"\n', 0o600, "the key of h1-h2 is not hex"),
    ('[pairs]\n"h2-h1" = "' + "00" * 32 + '"\n', 0o600, "pair 'h2-h1' is not an edge and a cloud"),
    ('[pairs]\n"h1-h2" = "' + "00" * 32 + '"\n', 0o600, "no key for h1-h3"),
    ('[pairs]\n"h1-h2" = "' + "00" * 32 + '"\n', 0o644, r"others may read it \(mode 0644\); chmod 600"),
    ('pairs = 3\n', 0o600, r"give a \[pairs\] table"),
    ('[pairs\n', 0o600, "not TOML"),
])
def test_a_bad_secrets_file_is_one_line(tmp_path, text, mode, message):
    path = tmp_path / "t.toml"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(TopologyError, match=message) as e:
        load_secrets(REDUNDANT, path)
    assert "\n" not in str(e.value)


def test_a_missing_secrets_file_says_how_to_make_it(tmp_path):
    with pytest.raises(TopologyError, match="no such file; make it with dcia keygen --tensor-keys"):
        load_secrets(REDUNDANT, tmp_path / "none.toml")


def test_dcia_keygen_makes_the_secrets_file(tmp_path, capsys):
    path = tmp_path / "t.toml"
    assert main(["keygen", "--tensor-keys", str(path), "--topology",
                 str(ROOT / "topologies" / "redundant.toml")]) == 0
    assert "keys for h1-h2, h1-h3" in capsys.readouterr().out
    assert set(load_secrets(REDUNDANT, path)) == {("h1", "h2"), ("h1", "h3")}
