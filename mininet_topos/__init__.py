"""Mininet topologies of the topology files, the P4 switch node and the testbed behind `make run`."""

import logging

import mininet.log

# Importing mininet.log makes every logger created afterwards a MininetLogger with a console
# handler of its own: each of our messages would print twice, the first without a newline.
logging.setLoggerClass(logging.Logger)
# Mininet's own logger prints through its handler; the root logger must not print it again.
mininet.log.lg.propagate = False
