"""maskx-d2: Mask^X R-CNN ("Learning to Segment Every Thing") as a Detectron2 extension."""

from setuptools import find_packages, setup

setup(
    name="maskx-d2",
    version="0.1.0",
    description="Partially supervised instance segmentation (Mask^X R-CNN) for Detectron2",
    packages=find_packages(include=["maskx_d2", "maskx_d2.*"]),
    python_requires=">=3.9",
    # detectron2 and torch are installed by setup.sh (detectron2 is not on PyPI).
    install_requires=[
        "numpy",
        "pycocotools>=2.0.2",
        "fvcore>=0.1.5",
        "opencv-python-headless",
        "Pillow",
    ],
    extras_require={"test": ["pytest>=7", "pytest-timeout"]},
)
