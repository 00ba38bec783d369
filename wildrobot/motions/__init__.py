"""Reference motions for WildRobot: the clip format and its loader (``clip``, ``loader``), a walking
gait generator (``generator``), physical checks and gait descriptors (``checks``), imitation metrics
(``metrics``), JSON import (``convert``) and pictures (``show``). ``python -m wildrobot.motions``
runs them from the command line; docs/motions.md describes them."""
