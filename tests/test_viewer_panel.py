"""The film large (issue 23, item 4): refit on resize unless the reader zoomed, the Window box in step with the
film's window (R, a drag, a preset), invert (I), and the splitter remembered between runs."""

from pathlib import Path

import numpy as np

from cxr_desktop.studies.windowing import PRESETS
from cxr_desktop.ui.preferences import SPLITTER, settings
from cxr_desktop.ui.viewer_panel import CUSTOM, ViewerPanel
from cxr_desktop.worklist.rows import DONE, Row

FILM = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (400, 1))
ROW = Row(Path("film.png"), 0, 0.0, status=DONE, quality="ok")


def shown_scale(panel: ViewerPanel) -> float:
    return panel.view.transform().m11()


def panel_with_film(qtbot) -> ViewerPanel:
    panel = ViewerPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 500)
    panel.show()
    panel.show_image(FILM, None, ROW, None)
    qtbot.wait(50)
    return panel


def test_the_film_is_fitted_again_when_the_window_grows_unless_the_reader_zoomed(qtbot):
    panel = panel_with_film(qtbot)
    small = shown_scale(panel)
    panel.resize(1200, 1000)
    qtbot.wait(50)
    large = shown_scale(panel)
    assert large > small * 1.5, "the film must grow with the window"
    panel.view.zoom(1.2)
    zoomed = shown_scale(panel)
    panel.resize(900, 800)
    qtbot.wait(50)
    assert shown_scale(panel) == zoomed, "a zoom the reader chose is kept on resize"
    panel.view.fit()
    assert shown_scale(panel) < zoomed


def test_the_window_box_follows_the_film_window(qtbot):
    panel = panel_with_film(qtbot)
    assert panel.preset.currentText() == "Full range"
    panel.preset.textActivated.emit("Lung")
    assert (panel.view.center, panel.view.width) == PRESETS["Lung"]
    panel.view.set_window(0.33, 0.61)  # as a left-drag does
    assert panel.preset.currentText() == CUSTOM
    panel.view.reset_window()  # R
    assert panel.preset.currentText() == "Full range"


def test_invert_shows_the_negative_and_is_kept_for_the_next_film(qtbot):
    panel = panel_with_film(qtbot)
    plain = panel.view.displayed_rgb()
    panel.invert_box.toggle()  # I
    assert np.array_equal(panel.view.displayed_rgb(), 255 - plain)
    panel.show_image(FILM[::-1].copy(), None, ROW, None)
    assert panel.view.inverted and np.array_equal(panel.view.displayed_rgb(), 255 - plain[::-1])


def test_the_reader_s_split_is_kept_between_runs(qtbot, tmp_path, monkeypatch, tiny_bundle):
    from cxr_desktop.ui.main_window import MainWindow
    from cxr_desktop.worklist.reviews import ReviewStore

    monkeypatch.setenv("CXR_SETTINGS", str(tmp_path / "settings.ini"))
    window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    qtbot.wait(50)
    total = sum(window.split.sizes())
    wanted = [300, total - 300 - 250, 250]
    window.split.setSizes(wanted)
    window.split.splitterMoved.emit(300, 1)  # as a drag of the handle does
    window.close()
    assert settings().value(SPLITTER) is not None

    again = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(again)
    again.resize(1500, 900)
    again.show()
    qtbot.wait(50)
    assert again.split.sizes() == wanted
    again.close()


def test_the_film_gets_most_of_the_width_on_a_small_screen_too():
    from cxr_desktop.ui.window_layout import split_sizes

    for width in (1280, 1500, 1920):
        worklist, film, findings = split_sizes(width)
        assert worklist + film + findings <= width + 1
    assert split_sizes(1280)[1] > split_sizes(1280)[0]  # the film wider than the list
    assert split_sizes(1920)[1] >= 1000


def test_a_prior_is_shown_beside_the_study_at_the_same_window_and_polarity(qtbot):
    from cxr_desktop.ui.compare import CompareDialog
    from cxr_desktop.ui.image_view import ImageView

    main = ImageView()
    qtbot.addWidget(main)
    main.set_image(FILM)
    main.set_inverted(True)
    main.set_window(*PRESETS["Lung"])
    prior = Row(Path("00000013_000.png"), 0, 0.0, status=DONE, probabilities={"Cardiomegaly": 0.2})
    now = Row(Path("00000013_004.png"), 1, 0.0, status=DONE, probabilities={"Cardiomegaly": 0.7})
    dialog = CompareDialog()
    qtbot.addWidget(dialog)
    dialog.show_pair([(prior, FILM[::-1].copy()), (now, FILM)], main, "Cardiomegaly")
    left, right = dialog.views
    assert np.array_equal(right.displayed_rgb(), main.displayed_rgb())
    assert left.inverted and (left.center, left.width) == PRESETS["Lung"]
    assert "00000013_000.png" in dialog.titles[0].text() and "score 0.70" in dialog.titles[1].text()
