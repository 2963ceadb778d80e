"""The ``rig`` fixture: the committed DCIA pipeline on each switch target (see rig.py)."""

import pytest

from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port
from tests.dataplane.rig import Rig
from tests.netlab import NetLab


@pytest.fixture(params=["embedded", "bmv2"])
def rig(request, tmp_path):
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("parity with BMv2 needs simple_switch_grpc (PATH, $SIMPLE_SWITCH_GRPC or "
                    "/opt/p4/bin); it is not installed here")
    with NetLab("dp", ports=2) as lab:
        config = SwitchConfig(
            ports={1: lab.switch_ifname(1), 2: lab.switch_ifname(2)},
            grpc_addr=f"127.0.0.1:{free_tcp_port()}",
            log_file=tmp_path / "switch.log",
        )
        with SwitchProcess(request.param, config, stdout_path=tmp_path / "switch.out") as proc:
            rig = Rig(lab, proc)
            rig.install_routes()
            yield rig
