"""Sphinx extension: the student edition of the book, built without solutions.

With ``student_edition = True`` every solution (``{solution}``, and gated
``{solution-start}``/``{solution-end}`` blocks together with the code cells inside them) is
removed from the rendered pages and the search index. sphinx-exercise's own
``hide_solutions`` option cannot be used for this: it crashes on gated solutions.
This transform runs after sphinx-exercise has merged each gated block into one solution node,
so removing that node removes the whole block.
"""

from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx_exercise.nodes import solution_node


class RemoveSolutions(SphinxPostTransform):
    """Delete every solution node when the ``student_edition`` option is on."""

    default_priority = 900  # after sphinx-exercise's post-transforms (priorities 5 to 22)

    def run(self, **kwargs):
        if not self.config.student_edition:
            return
        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)


def setup(app):
    app.add_config_value("student_edition", False, "env")
    app.add_post_transform(RemoveSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
