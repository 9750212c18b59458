//! Layers that only move channels: concat (of the inputs not written in place), chunk and channel
//! shuffle.

use cnnc_ir::plan::Layer;

use super::arena::{Bind, BufferId};
use super::Builder;
use crate::gpu::kernels::ChannelCopy;

impl Builder<'_> {
    /// Copies each input not already written in place into its channels of the output.
    pub(super) fn concat(&mut self, layer: &Layer) {
        let out = self.output_for(layer);
        let (out_c, p) = layer.shape.channels_positions();
        let mut offset = 0;
        for input in &layer.inputs {
            let (c, _) = input.shape.channels_positions();
            if !input.in_place {
                let src = self.buffer_of(input.value);
                let copy = ChannelCopy {
                    n: self.chunk,
                    channels: c,
                    positions: p,
                    in_c: c,
                    out_c,
                    in_offset: 0,
                    out_offset: offset,
                    shuffle_groups: 0,
                };
                self.copy(&copy, src, out);
            }
            offset += c;
        }
    }

    /// The `index`-th of `chunks` equal channel slices.
    pub(super) fn chunk(&mut self, layer: &Layer, chunks: usize, index: usize) {
        let (in_c, p) = layer.inputs[0].shape.channels_positions();
        let per = in_c / chunks;
        let src = self.buffer_of(layer.inputs[0].value);
        let out = self.output_for(layer);
        let copy = ChannelCopy {
            n: self.chunk,
            channels: per,
            positions: p,
            in_c,
            out_c: per,
            in_offset: index * per,
            out_offset: 0,
            shuffle_groups: 0,
        };
        self.copy(&copy, src, out);
    }

    /// ShuffleNet's channel shuffle in `groups`.
    pub(super) fn shuffle(&mut self, layer: &Layer, groups: usize) {
        let (c, p) = layer.shape.channels_positions();
        let src = self.buffer_of(layer.inputs[0].value);
        let out = self.output_for(layer);
        let copy = ChannelCopy {
            n: self.chunk,
            channels: c,
            positions: p,
            in_c: c,
            out_c: c,
            in_offset: 0,
            out_offset: 0,
            shuffle_groups: groups,
        };
        self.copy(&copy, src, out);
    }

    fn copy(&mut self, copy: &ChannelCopy, src: BufferId, out: BufferId) {
        self.dispatch(copy, &[Bind::Buffer(src), Bind::Buffer(out)]);
    }
}
