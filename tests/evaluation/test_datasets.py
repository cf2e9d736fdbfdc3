import pytest
from PIL import Image

from dcanalysis.evaluation.datasets import ImageFolder, available_datasets, dataset_info


@pytest.mark.parametrize("name,n", [("pets", 37), ("flowers102", 102), ("food101", 101), ("fgvc_aircraft", 100),
                                    ("cifar10", 10), ("stl10", 10), ("imagenet", 1000)])
def test_class_lists(name, n):
    info = dataset_info(name)
    assert len(info.classes) == len(set(info.classes)) == n and info.source


def test_prompts_use_the_template():
    assert dataset_info("pets").prompts()[0] == "a photo of a Abyssinian, a type of pet."


def test_unknown_dataset():
    with pytest.raises(ValueError, match="pets"):
        dataset_info("oxford_pets")
    assert "imagenet" in available_datasets()


def test_image_folder_maps_folders_to_class_order(tmp_path):
    for folder in ["dog", "Cat", "bird_of_prey"]:
        (tmp_path / folder).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / folder / "a.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path, classes=["cat", "dog", "bird of prey"])
    assert sorted(label for _, label in ds.items) == [0, 1, 2] and len(ds) == 3
    with pytest.raises(ValueError, match="match no class"):
        ImageFolder(tmp_path, classes=["cat", "dog"])
