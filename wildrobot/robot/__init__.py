"""The robot: its MJCF model and the one description every other module reads."""

from wildrobot.robot.description import RobotDescription, load_robot_description

__all__ = ["RobotDescription", "load_robot_description"]
