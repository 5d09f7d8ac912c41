"""maskx-d2: Mask^X R-CNN ("Learning to Segment Every Thing") as a Detectron2 extension."""

from setuptools import find_packages, setup

setup(
    name="maskx-d2",
    version="0.1.0",
    description="Partially supervised instance segmentation (Mask^X R-CNN) for Detectron2",
    packages=find_packages(include=["maskx_d2", "maskx_d2.*"]),
    python_requires=">=3.9",
    install_requires=[
        # detectron2 is not on PyPI: setup.sh installs it (pinned git commit, or the sal-detectron2
        # snapshot) and then this package with --no-deps, so pip never looks for it there.
        "detectron2",
        # Unpinned: setup.sh's TORCH_SPEC chooses the build (CPU, CUDA version).
        "torch",
        "torchvision",
        "numpy",
        "Pillow",
        "opencv-python-headless",
        "pycocotools>=2.0.2",
        "fvcore>=0.1.5",
        "iopath>=0.1.7",
        "tabulate",
    ],
    extras_require={"test": ["pytest>=7", "pytest-timeout"]},
)
