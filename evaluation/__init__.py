"""The evaluation (issue 12): DCIA against edge-only, cloud-only and the best edge–cloud
split, measured on real packets in the Mininet testbed.

- ``scenario``: a scenario file (a topology plus overrides: link rates and delays, the
  edge's CPU share), pure;
- ``strategies``: what each strategy lets the planner do, pure;
- ``calibration``: the measured timings the planner plans with (the file ``dcia
  calibrate`` writes) and how they are measured in a running testbed;
- ``compute_probe``: the per-layer timer run inside a host (under its CPU limit);
- ``report``: statistics, speedups, prediction errors, tables, JSON and plots, pure but
  for writing files;
- ``runner``: ``dcia eval`` and ``dcia calibrate``, driving mininet_topos.testbed.
"""
