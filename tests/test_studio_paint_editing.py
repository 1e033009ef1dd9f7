"""synthesis/editing.py, the maths under the studio's Paint tab: brush masks against counted
pixels, instance ids (fresh, smallest free k, class * 1000 + k), the stuff layer under things,
erasing, procedural scenes in a model's class ids, class tables, and the maps as PNG files."""
import io

import numpy as np
import pytest
from PIL import Image

from ganprior.data import scenes
from ganprior.synthesis import editing

THINGS = {4, 5, 6, 7}


def canvas_of(label, inst=None):
    return editing.canvas_from_maps(np.asarray(label), inst, 8, THINGS)


def test_a_brush_point_is_a_disc_and_a_stroke_a_capsule():
    disc = editing.stroke_mask((9, 9), [(4, 4)], 2)
    # |dx|^2 + |dy|^2 <= 4: the centre, 4 at distance 1, 4 at sqrt 2, 4 at distance 2
    assert disc.sum() == 13 and disc[4, 2] and disc[4, 6] and not disc[2, 2]
    line = editing.stroke_mask((9, 20), [(3, 4), (12, 4)], 1)
    # rows 3..5 between the ends (3 x 10) plus the two half discs' tips at x = 2 and x = 13
    assert line.sum() == 32 and line[4, 2] and line[4, 13] and not line[3, 2]
    assert np.array_equal(editing.stroke_mask((9, 20), [(12, 4), (3, 4)], 1), line)
    clipped = editing.stroke_mask((9, 9), [(0, 0)], 1)
    assert clipped.sum() == 3  # a disc at the corner keeps its 3 pixels inside


def test_stuff_strokes_paint_the_stuff_layer_and_thing_strokes_one_instance():
    c = editing.blank_canvas((8, 8), 8, THINGS, fill=0)
    editing.paint_stroke(c, 2, [(0, 7), (7, 7)], 0)
    assert (c.label[7] == 2).all() and (c.inst[7] == 2).all() and (c.stuff[7] == 2).all()
    tree = editing.new_instance_id(c, 5)
    editing.paint_stroke(c, 5, [(3, 3)], 1, tree)
    assert tree == 5000 and c.inst[3, 3] == 5000 and c.label[2, 3] == 5
    assert c.stuff[3, 3] == 0  # the sky stays under the tree
    with pytest.raises(ValueError, match="needs the instance"):
        editing.paint_stroke(c, 5, [(1, 1)], 1)
    with pytest.raises(ValueError, match="outside 0..7"):
        editing.paint_stroke(c, 8, [(1, 1)], 1)


def test_new_instances_take_the_smallest_free_id_of_their_class():
    c = editing.blank_canvas((10, 10), 8, THINGS, fill=2)
    ids = [editing.place_instance(c, 6, (k, 0, k, 0)) for k in range(3)]
    assert ids == [6000, 6001, 6002]
    assert editing.place_instance(c, 4, (9, 9, 9, 9)) == 4000  # its own class's numbering
    editing.erase_instance(c, 6001)
    assert editing.new_instance_id(c, 6) == 6001
    with pytest.raises(ValueError, match="stuff class"):
        editing.new_instance_id(c, 2)
    zero = editing.blank_canvas((2, 2), 8, {0, 6}, fill=1)
    with pytest.raises(ValueError, match="class 0 cannot have instances"):
        editing.new_instance_id(zero, 0)  # 0 * 1000 + k would be the stuff ids
    wide = editing.blank_canvas((2, 2), 70, {66}, fill=0)
    with pytest.raises(ValueError, match="16-bit"):
        editing.new_instance_id(wide, 66)  # 66 * 1000 + 999 > 65535


def test_rect_and_ellipse_boxes():
    rect = editing.shape_mask((10, 10), (7, 2, 2, 5))  # any corner order; corners included
    assert rect.sum() == 6 * 4 and rect[2, 2] and rect[5, 7] and not rect[6, 7]
    ell = editing.shape_mask((10, 10), (2, 2, 6, 6), "ellipse")
    # radius 2.5 around (4, 4): 21 pixel centres within it (x^2 + y^2 <= 6.25)
    assert ell.sum() == 21 and ell[4, 2] and not ell[2, 2]
    assert editing.shape_mask((10, 10), (3, 3, 3, 3), "ellipse").sum() == 1


def test_erasing_gives_back_the_stuff_beneath():
    label = np.zeros((6, 6), np.int64)
    label[3:] = 2                        # sky above, road below
    label[2:5, 1:4] = 6                  # a car across the line
    c = canvas_of(label)
    car = int(c.inst[3, 2])
    assert car == 6000 and c.inst[0, 0] == 0 and c.inst[5, 5] == 2
    # the stuff under the car: the nearest stuff pixel's class
    assert c.stuff[2, 2] == 0 and c.stuff[4, 2] == 2
    editing.erase_instance(c, car)
    assert np.array_equal(c.label, c.stuff) and np.array_equal(c.inst, c.label)
    # row 2 is next to the sky, row 4 to the road; in row 3 the ends touch the road at x = 0
    # and x = 4 (its middle pixel is as far from both, either may win)
    assert (c.label[2, 1:4] == 0).all() and (c.label[4, 1:4] == 2).all()
    assert c.label[3, 1] == c.label[3, 3] == 2
    assert (c.label[:, [0, 4, 5]] == label[:, [0, 4, 5]]).all()
    with pytest.raises(ValueError, match="no instance 6000"):
        editing.erase_instance(c, car)
    with pytest.raises(ValueError, match="no instance 2"):
        editing.erase_instance(c, 2)  # stuff is not erased


def test_loaded_maps_are_checked():
    with pytest.raises(ValueError, match="label value 9 at x=1, y=0 is outside 0..7"):
        canvas_of([[0, 9], [0, 0]])
    with pytest.raises(ValueError, match="instance map is 3x2; the canvas is 2x2"):
        canvas_of(np.zeros((2, 2), np.int64), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="16-bit"):
        canvas_of(np.zeros((2, 2), np.int64), np.full((2, 2), 70000))
    with pytest.raises(ValueError, match="integer ids"):
        canvas_of(np.zeros((2, 2), np.float32))


def test_a_scene_in_a_models_own_class_order():
    sc = scenes.scene(7, 0, 64)
    c = editing.scene_canvas(7, 64, 8, None, THINGS)
    assert np.array_equal(c.label, sc.label) and np.array_equal(c.inst, sc.inst)
    names = list(scenes.CLASSES[1:]) + ["sky"]  # the same classes, sky last
    r = editing.scene_canvas(7, 64, 8, names, {3, 4, 5, 6})
    assert np.array_equal(r.label, (sc.label - 1) % 8)
    car = sc.label == scenes.CLASS["car"]
    assert car.any() and np.array_equal(r.inst[car], sc.inst[car] - 1000)  # car is class 5
    assert np.array_equal(r.inst[sc.label == 0], np.full((sc.label == 0).sum(), 7))
    with pytest.raises(ValueError, match="not the procedural scenes'"):
        editing.scene_canvas(7, 64, 8, ["a", "b", "c", "d", "e", "f", "g", "h"], set())


def test_class_tables_from_provenance_or_the_scenes():
    t = editing.class_table({}, 8)  # no names: the scenes' classes
    assert t["names"] == list(scenes.CLASSES) and t["things"] == [4, 5, 6, 7]
    assert t["colours"][2] == list(scenes.PALETTE["road"])
    own = editing.class_table({"classes": ["water", "boat"], "palette": {"boat": [1, 2, 3]},
                               "things": ["boat"]}, 2)
    assert own["names"] == ["water", "boat"] and own["things"] == [1]
    assert own["colours"][1] == [1, 2, 3] and len(own["colours"][0]) == 3
    plain = editing.class_table({}, 3)
    assert plain["names"] == ["0", "1", "2"] and plain["things"] == []


def test_maps_as_png_files_round_trip():
    label = np.random.default_rng(0).integers(0, 8, (5, 7))
    inst = np.random.default_rng(1).integers(0, 65536, (5, 7))
    lab = Image.open(io.BytesIO(editing.label_png(label, 8)))
    assert lab.mode == "L" and np.array_equal(np.asarray(lab), label)
    ins = Image.open(io.BytesIO(editing.instance_png(inst)))
    assert ins.mode.startswith("I;16") and np.array_equal(np.asarray(ins), inst)
    assert np.array_equal(editing.read_id_png(editing.instance_png(inst), "instance map",
                                              (5, 7)), inst)
    with pytest.raises(ValueError, match="is 7x5; the canvas is 5x5"):
        editing.read_id_png(editing.label_png(label, 8), "label map", (5, 5))
    with pytest.raises(ValueError, match="more than 20 pixels"):
        editing.read_id_png(editing.label_png(label, 8), "label map", max_pixels=20)
