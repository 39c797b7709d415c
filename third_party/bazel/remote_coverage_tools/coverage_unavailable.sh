#!/bin/sh
echo "clip_edge: 'bazel coverage' is not supported offline (remote_coverage_tools is a stub); use pytest --cov" >&2
exit 1
