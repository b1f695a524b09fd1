"""TEMPORARY until the bench lands."""
import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass
def run(args: argparse.Namespace) -> int:
    return 1
